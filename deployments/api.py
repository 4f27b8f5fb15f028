"""The JSON API for CI: register releases, start and follow rollouts.

Authentication is a bearer token (``Authorization: Bearer ocs_...``) that acts as its
user: registering and deploying need the operator role, reading needs the viewer role.
No session, so no CSRF; every mutation is audited like its page twin.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from deployments import rollouts
from deployments.models import ApiToken, Release, Rollout
from deployments.releases import ReleaseInput, ReleaseRefused, release_register
from deployments.rollouts import RolloutRefused, Strategy, Target
from opsconsole.accounts.models import Role
from opsconsole.audit.services import audit_record

TOKEN_PREFIX = "ocs_"  # noqa: S105 - a marker, not a secret


def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """A new token; the raw value is returned once and never stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name,
        user=user,
        prefix=raw[:12],
        key_sha256=hashlib.sha256(raw.encode()).hexdigest(),
    )
    return token, raw


def _token_user(request: HttpRequest):
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    digest = hashlib.sha256(header[7:].strip().encode()).hexdigest()
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_sha256=digest, revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user


def api_view(role: str) -> Callable:
    def decorator(view: Callable) -> Callable:
        @csrf_exempt
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            user = _token_user(request)
            if user is None:
                return JsonResponse({"error": "a valid bearer token is required"}, status=401)
            if not user.has_role(Role.VIEWER):
                return JsonResponse({"error": "not found"}, status=404)
            needed = Role.OPERATOR if request.method != "GET" else role
            if not user.has_role(needed):
                return JsonResponse({"error": f"this needs the {needed} role"}, status=403)
            request.user = user
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def release_json(release: Release) -> dict[str, Any]:
    return {
        "version": release.version,
        "artifact_type": release.artifact_type,
        "artifact": release.artifact_summary,
        "image_digest": release.image_digest,
        "zip_sha256": release.zip_sha256,
        "runtime": release.runtime,
        "handler": release.handler,
        "architecture": release.architecture,
        "memory_mb": release.memory_mb,
        "timeout_s": release.timeout_s,
        "health_method": release.health_method,
        "health_path": release.health_path,
        "health_statuses": release.health_statuses,
        "health_timeout_s": release.health_timeout_s,
        "app_settings": release.app_settings,
        "migrations": [m.name for m in release.migrations.all()],
        "created_at": release.created_at.isoformat(),
    }


def rollout_json(rollout: Rollout) -> dict[str, Any]:
    counts = rollouts.rollout_counts(rollout)
    return {
        "id": rollout.pk,
        "release": rollout.release.version,
        "status": rollout.status,
        "reason": rollout.status_reason,
        "wave_sizes": rollout.wave_sizes,
        "current_wave": rollout.current_wave + 1,
        "counts": counts["totals"],
        "failed": [
            {"tenant": d.tenant.slug, "reason": d.reason}
            for d in rollout.deployments.filter(status="failed").select_related("tenant")
        ],
        "created_at": rollout.created_at.isoformat(),
        "finished_at": rollout.finished_at.isoformat() if rollout.finished_at else None,
    }


def _statuses(value: Any) -> str | list:
    """``"200-299,301"`` or a JSON list of statuses and ranges (``[200, "300-399"]``)."""
    return value if isinstance(value, list) else str(value)


@api_view(Role.VIEWER)
@require_http_methods(["GET", "POST"])
def releases(request: HttpRequest) -> JsonResponse:
    if request.method == "GET":
        return JsonResponse({"releases": [release_json(r) for r in Release.objects.all()[:50]]})
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return JsonResponse({"problems": ["body: not JSON"]}, status=400)
        files = request.FILES
    else:
        body, files = request.POST.dict(), request.FILES
    migrations = body.get("migrations") or []
    if isinstance(migrations, dict):
        migrations = sorted(migrations.items())
    elif isinstance(migrations, list):
        migrations = [(m["name"], m["sql"]) for m in migrations if isinstance(m, dict)]
    migrations += sorted((f.name, f.read()) for f in files.getlist("migrations"))
    upload = files.get("file")
    artifact = body.get("artifact", "")
    try:
        data = ReleaseInput(
            version=str(body.get("version", "")),
            artifact=artifact,
            notes=str(body.get("notes", "")),
            zip_bytes=upload.read() if upload and artifact == "zip" else None,
            archive_bytes=upload.read() if upload and artifact == "archive" else None,
            image=str(body.get("image", "")),
            runtime=str(body.get("runtime", "")),
            handler=str(body.get("handler", "")),
            architecture=str(body.get("architecture", "x86_64")),
            memory_mb=int(body.get("memory_mb", 256)),
            timeout_s=int(body.get("timeout_s", 30)),
            migration_files=migrations,
            # Checked field by field by release_register ("health_path: ...").
            health_method=str(body.get("health_method", "GET")),
            health_path=str(body.get("health_path", "/healthz")),
            health_statuses=_statuses(body.get("health_statuses", "200-299")),
            health_timeout_s=body.get("health_timeout_s", 5),
            # An object in JSON, JSON text in a multipart upload's form field.
            app_settings=body.get("app_settings"),
        )
        release = release_register(data, created_by=request.user)
    except ReleaseRefused as exc:
        return JsonResponse({"problems": exc.problems}, status=400)
    except (TypeError, ValueError) as exc:
        return JsonResponse({"problems": [str(exc)]}, status=400)
    audit_record(request=request, action="release.register", obj=release, via="api")
    return JsonResponse(release_json(release), status=201)


@api_view(Role.VIEWER)
@require_http_methods(["GET"])
def release_detail(request: HttpRequest, version: str) -> JsonResponse:
    return JsonResponse(release_json(get_object_or_404(Release, version=version)))


@api_view(Role.VIEWER)
@require_http_methods(["GET", "POST"])
def rollout_list(request: HttpRequest) -> JsonResponse:
    if request.method == "GET":
        return JsonResponse({"rollouts": [rollout_json(r) for r in Rollout.objects.all()[:50]]})
    try:
        body = json.loads(request.body or b"{}")
        release = Release.objects.filter(version=body.get("release", "")).first()
        if release is None:
            return JsonResponse({"problems": ["release: no such release"]}, status=400)
        target = Target(
            kind=body.get("target", "all"),
            values=list(body.get("values", [])),
            on_conflict=body.get("on_conflict", "wait"),
        )
        defaults = Strategy.default()
        strategy = Strategy(
            **{
                k: type(getattr(defaults, k))(body.get(k, getattr(defaults, k)))
                for k in defaults.__dataclass_fields__
            }
        )
        if body.get("preview"):
            preview = rollouts.rollout_preview(release, target, strategy)
            return JsonResponse(
                {
                    "waves": preview.waves,
                    "estimate_s": preview.estimate_s,
                    "downgrades": preview.downgrades,
                    "busy": preview.busy,
                }
            )
        rollout = rollouts.rollout_start(
            release=release,
            target=target,
            strategy=strategy,
            created_by=request.user,
            confirm_downgrade=bool(body.get("confirm_downgrade")),
        )
    except RolloutRefused as exc:
        return JsonResponse({"problems": [str(exc)]}, status=400)
    except (TypeError, ValueError) as exc:
        return JsonResponse({"problems": [str(exc)]}, status=400)
    audit_record(request=request, action="rollout.start", obj=rollout, via="api")
    return JsonResponse(rollout_json(rollout), status=201)


@api_view(Role.VIEWER)
@require_http_methods(["GET"])
def rollout_detail(request: HttpRequest, rollout_id: int) -> JsonResponse:
    return JsonResponse(rollout_json(get_object_or_404(Rollout, pk=rollout_id)))


_ACTIONS = {
    "pause": rollouts.rollout_pause,
    "resume": rollouts.rollout_resume,
    "cancel": rollouts.rollout_cancel,
    "retry": rollouts.rollout_retry_failed,
}


@api_view(Role.OPERATOR)
@require_http_methods(["POST"])
def rollout_action(request: HttpRequest, rollout_id: int, action: str) -> JsonResponse:
    rollout = get_object_or_404(Rollout, pk=rollout_id)
    if action not in _ACTIONS:
        return JsonResponse({"error": "unknown action"}, status=404)
    changed = _ACTIONS[action](rollout)
    audit_record(request=request, action=f"rollout.{action}", obj=rollout, via="api")
    rollout.refresh_from_db()
    return JsonResponse({**rollout_json(rollout), "changed": bool(changed)})

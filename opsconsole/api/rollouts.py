"""Rollouts: preview, start with a strategy, follow per tenant, pause, resume, cancel,
retry the failed, roll back. A scoped token sees only its tenants' deployments."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Literal

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from deployments import rollbacks, rollout_display, rollouts
from deployments.models import Deployment, Release, Rollout
from deployments.rollout_scope import (
    rollout_reaches_hidden,
    target_refusal,
    visible_rollouts,
)
from deployments.rollouts import RolloutRefused, Strategy, Target
from opsconsole.accounts.models import Role
from opsconsole.api.auth import audit, require
from opsconsole.api.errors import ApiError, refused
from opsconsole.api.schemas import answers
from tenants.scope import scope_filter

router = Router(tags=["rollouts"])


class RolloutIn(Schema):
    release: str = Field(description="The release's version.")
    target: Literal["all", "rings", "tags", "tenants"] = "all"
    values: list[str | int] = Field(
        [], description="rings: ring numbers; tags: key=value; tenants: slugs."
    )
    on_conflict: Literal["wait", "skip"] = Field(
        "wait", description="A tenant already in another open rollout: wait for it or skip it."
    )
    max_parallel: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Deployments in flight at once per AWS account and region (each has its "
        "own Lambda budget). Default: what keeps the budget, not the slots, the limit.",
    )
    canary_max_failures: int | None = Field(None, ge=0)
    wave_failure_pct: int | None = Field(None, ge=0, le=100)
    bake_s: int | None = Field(None, ge=0, le=86400)
    traffic: Literal["all", "canary"] | None = None
    canary_percent: int | None = Field(None, ge=1, le=99)
    canary_minutes: int | None = Field(None, ge=1, le=1440)
    confirm_downgrade: bool = False


class PreviewOut(Schema):
    waves: list[list[str]]
    total: int
    estimate_s: int
    downgrades: list[str]
    busy: dict[str, int]
    strategy: dict


class DeploymentOut(Schema):
    tenant: str
    wave: int
    status: str
    from_release: str
    from_version: str
    to_version: str
    step: str
    reason: str
    job_id: int | None
    started_at: datetime | None
    finished_at: datetime | None

    @staticmethod
    def resolve_tenant(obj: Deployment) -> str:
        return obj.tenant.slug

    @staticmethod
    def resolve_wave(obj: Deployment) -> int:
        return obj.wave + 1


class RolloutOut(Schema):
    id: int
    release: str
    status: str
    reason: str
    target: dict
    wave_sizes: list[int]
    current_wave: int
    counts: dict[str, int]
    rollback_of: int | None
    method: str
    created_at: datetime
    finished_at: datetime | None

    @staticmethod
    def resolve_release(obj: Rollout) -> str:
        return obj.release.version

    @staticmethod
    def resolve_reason(obj: Rollout) -> str:
        return obj.status_reason

    @staticmethod
    def resolve_current_wave(obj: Rollout) -> int:
        return obj.current_wave + 1

    @staticmethod
    def resolve_counts(obj: Rollout) -> dict[str, int]:
        return obj.visible_counts

    @staticmethod
    def resolve_rollback_of(obj: Rollout) -> int | None:
        return obj.rollback_of_id


class RolloutPageOut(Schema):
    items: list[RolloutOut]
    count: int


class RolloutDetailOut(RolloutOut):
    deployments: list[DeploymentOut]

    @staticmethod
    def resolve_deployments(obj: Rollout) -> list[Deployment]:
        return obj.deployments_list


class ActionOut(RolloutOut):
    changed: int


class RollbackIn(Schema):
    method: Literal["alias", "redeploy"] = Field(
        "alias",
        description="alias: each tenant's alias back to the version it ran before (1 Lambda "
        "call; redeployed where that version is gone); redeploy: the earlier release "
        "deployed again, every step.",
    )


class RollbackOut(Schema):
    rollouts: list[RolloutOut]


def _visible_rollouts(request: HttpRequest):
    return visible_rollouts(request.user, Rollout.objects.select_related("release"))


def _with_counts(request: HttpRequest, listed: list[Rollout]) -> list[Rollout]:
    """Each rollout with its totals over what the token may see (one query for all)."""
    counts = rollout_display.list_counts(listed, request.user)
    for rollout in listed:
        rollout.visible_counts = counts[rollout.pk]["totals"]
    return listed


def _rollout(request: HttpRequest, rollout_id: int) -> Rollout:
    rollout = _visible_rollouts(request).filter(pk=rollout_id).first()
    if rollout is None:
        raise ApiError(404, "Not found.")
    return _with_counts(request, [rollout])[0]


def _detail(request: HttpRequest, rollout: Rollout) -> Rollout:
    rows = rollout.deployments.select_related("tenant").order_by("wave", "position")
    rollout.deployments_list = list(rows.filter(scope_filter(request.user, "tenant__")))
    return rollout


def _steerable(request: HttpRequest, rollout: Rollout) -> None:
    """A scoped user may steer only a rollout all of whose tenants they may see."""
    if rollout_reaches_hidden(request.user, rollout):
        raise ApiError(403, "This rollout also deploys to tenants outside the token's scope.")


def _check_target(request: HttpRequest, target: Target) -> None:
    # The service refuses too (rollout_start); asked here first to name the field.
    refusal = target_refusal(request.user, target)
    if refusal:
        raise refused([f"target: {refusal}"])


def _strategy(body: RolloutIn) -> Strategy:
    chosen = {k: v for k, v in body.dict().items() if k in Strategy.__dataclass_fields__}
    defaults = asdict(Strategy.default())
    return Strategy(**{k: defaults[k] if v is None else v for k, v in chosen.items()})


def _release(version: str) -> Release:
    release = Release.objects.filter(version=version).first()
    if release is None:
        raise refused([f"release: no release {version!r}"])
    return release


def _target(body: RolloutIn) -> Target:
    return Target(kind=body.target, values=list(body.values), on_conflict=body.on_conflict)


@router.post("/preview", response=answers({200: PreviewOut}, 400))
def rollout_preview(request: HttpRequest, body: RolloutIn):
    """The waves and the time a rollout would take; changes nothing."""
    strategy = _strategy(body)
    target = _target(body)
    _check_target(request, target)
    try:
        preview = rollouts.rollout_preview(_release(body.release), target, strategy)
    except RolloutRefused as exc:
        raise refused([str(exc)]) from exc
    return {
        "waves": preview.waves,
        "total": preview.total,
        "estimate_s": preview.estimate_s,
        "downgrades": preview.downgrades,
        "busy": preview.busy,
        "strategy": asdict(strategy),
    }


@router.post("/", response=answers({201: RolloutDetailOut}, 400, 403))
def rollout_create(request: HttpRequest, body: RolloutIn):
    """Start a rollout. Waves: canary (ring 0, else one tenant), 10 %, the rest."""
    require(request, Role.OPERATOR)
    release = _release(body.release)
    target = _target(body)
    _check_target(request, target)
    try:
        rollout = rollouts.rollout_start(
            release=release,
            target=target,
            strategy=_strategy(body),
            created_by=request.user,
            confirm_downgrade=body.confirm_downgrade,
        )
    except RolloutRefused as exc:
        raise refused([str(exc)]) from exc
    audit(request, "rollout.start", rollout)
    return Status(201, _detail(request, _rollout(request, rollout.pk)))


@router.get("/", response=answers({200: RolloutPageOut}))
def rollout_list(
    request: HttpRequest,
    status: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
):
    """Newest first; ``status`` filters (running, paused, halted, succeeded, ...)."""
    qs = _visible_rollouts(request).order_by("-created_at")
    qs = qs.filter(status=status) if status else qs
    return {"count": qs.count(), "items": _with_counts(request, list(qs[offset : offset + limit]))}


@router.get("/{rollout_id}", response=answers({200: RolloutDetailOut}))
def rollout_get(request: HttpRequest, rollout_id: int):
    """The rollout with each deployment (the tenants the token may see)."""
    return _detail(request, _rollout(request, rollout_id))


_ACTIONS = {
    "pause": rollouts.rollout_pause,
    "resume": rollouts.rollout_resume,
    "cancel": rollouts.rollout_cancel,
    "retry": rollouts.rollout_retry_failed,
}


def _act(request: HttpRequest, rollout_id: int, action: str):
    rollout = _rollout(request, rollout_id)
    require(request, Role.OPERATOR)
    _steerable(request, rollout)
    changed = _ACTIONS[action](rollout)
    if changed:
        audit(request, f"rollout.{action}", rollout)
    rollout = _rollout(request, rollout_id)
    rollout.changed = int(changed)
    return rollout


@router.post("/{rollout_id}/pause", response=answers({200: ActionOut}, 403))
def rollout_pause(request: HttpRequest, rollout_id: int):
    """Start no new deployment; those running finish. ``changed`` 0: it was not running."""
    return _act(request, rollout_id, "pause")


@router.post("/{rollout_id}/resume", response=answers({200: ActionOut}, 403))
def rollout_resume(request: HttpRequest, rollout_id: int):
    return _act(request, rollout_id, "resume")


@router.post("/{rollout_id}/cancel", response=answers({200: ActionOut}, 403))
def rollout_cancel(request: HttpRequest, rollout_id: int):
    """Start nothing more; running deployments finish."""
    return _act(request, rollout_id, "cancel")


@router.post("/{rollout_id}/retry", response=answers({200: ActionOut}, 403))
def rollout_retry(request: HttpRequest, rollout_id: int):
    """Deploy the failed tenants again; ``changed`` is how many."""
    return _act(request, rollout_id, "retry")


@router.post(
    "/{rollout_id}/rollback",
    response=answers({201: RollbackOut}, 400, 403),
)
def rollout_rollback(request: HttpRequest, rollout_id: int, body: RollbackIn | None = None):
    """Return every tenant this rollout touched to the release it ran before (by default
    by moving its alias back; the body may ask for a redeploy)."""
    rollout = _rollout(request, rollout_id)
    require(request, Role.OPERATOR)
    _steerable(request, rollout)
    method = body.method if body else "alias"
    try:
        created = rollbacks.rollout_rollback(rollout, created_by=request.user, method=method)
    except RolloutRefused as exc:
        raise refused([str(exc)]) from exc
    audit(request, "rollout.rollback", rollout, rollouts=[r.pk for r in created], method=method)
    return Status(201, {"rollouts": [_rollout(request, r.pk) for r in created]})

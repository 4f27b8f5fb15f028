"""The events a webhook endpoint can ask for, and the payloads' shapes.

Payloads are small and stable: ids, slugs, versions, statuses and reasons, plus the
object's console URL when OPSCONSOLE_BASE_URL is set. The builders read attributes only,
so this module imports no domain model (the domain imports it, not the reverse).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Count
from django.urls import reverse

ROLLOUT_STARTED = "rollout.started"
ROLLOUT_HALTED = "rollout.halted"
ROLLOUT_FINISHED = "rollout.finished"
DEPLOYMENT_FAILED = "deployment.failed"
TENANT_ONBOARDED = "tenant.onboarded"
TENANT_FAILED = "tenant.failed"
# Sent by "Send test event" only: no endpoint subscribes to it.
TEST = "webhook.test"

EVENTS: dict[str, str] = {
    ROLLOUT_STARTED: "A rollout started",
    ROLLOUT_HALTED: "A rollout halted on its failure threshold",
    ROLLOUT_FINISHED: "A rollout finished (succeeded or cancelled)",
    DEPLOYMENT_FAILED: "A tenant's deployment failed",
    TENANT_ONBOARDED: "A tenant was onboarded (or repaired from failed)",
    TENANT_FAILED: "A tenant's onboarding failed",
}
EVENT_CHOICES = list(EVENTS.items())

REASON_MAX = 1000


def console_url(name: str, *args: Any) -> str:
    base = settings.OPSCONSOLE_BASE_URL.rstrip("/")
    return f"{base}{reverse(name, args=args)}" if base else ""


def _with_url(data: dict[str, Any], name: str, *args: Any) -> dict[str, Any]:
    url = console_url(name, *args)
    if url:
        data["url"] = url
    return data


def rollout_payload(rollout, **extra: Any) -> dict[str, Any]:
    data = {
        "rollout": rollout.pk,
        "release": rollout.release.version,
        "status": rollout.status,
        "waves": list(rollout.wave_sizes),
        "tenants": sum(rollout.wave_sizes),
    }
    if rollout.rollback_of_id:
        data["rollback_of"] = rollout.rollback_of_id
    if rollout.status_reason:
        data["reason"] = rollout.status_reason[:REASON_MAX]
    if rollout.finished_at is not None:
        # How it ended, tenant by tenant: {"succeeded": 19, "failed": 1, ...}.
        counted = rollout.deployments.order_by().values_list("status").annotate(n=Count("id"))
        data["deployments"] = dict(counted)
    data.update(extra)
    return _with_url(data, "deployments:rollout_detail", rollout.pk)


def deployment_payload(deployment, *, tenant_slug: str, release: str, reason: str) -> dict:
    data = {
        "deployment": deployment.pk,
        "rollout": deployment.rollout_id,
        "tenant": tenant_slug,
        "release": release,
        "status": "failed",
        "reason": reason[:REASON_MAX],
    }
    return _with_url(data, "deployments:rollout_detail", deployment.rollout_id)


def tenant_payload(tenant, *, status: str, reason: str = "", job_id: int | None = None) -> dict:
    data: dict[str, Any] = {
        "tenant": tenant.slug,
        "name": tenant.name,
        "region": tenant.region,
        "release": tenant.desired_release,
        "status": status,
    }
    if reason:
        data["reason"] = reason[:REASON_MAX]
    if job_id is not None:
        data["job"] = job_id
    return _with_url(data, "tenants:detail", tenant.slug)

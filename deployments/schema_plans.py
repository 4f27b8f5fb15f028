"""A tenant's schema plan (applied and pending migrations), read by a worker and cached.

Reading it means opening the tenant's database with the password from its secret, which
the web process never does (``tenants.health.readings``): the schema page shows the plan a
worker read last, with its age, and asks for a new one when it is older than a minute.
The plan is stored as plain values (no dataclasses) so a cached entry outlives a deploy.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.conf import settings

from deployments.migration_runner import PlanResult, plan_database
from deployments.models import Release
from deployments.tenant_release import database_target, release_specs
from tenants.health.readings import Reading, reading_get, reading_take
from tenants.models import Tenant

READ_TASK = "deployments.tasks.schema_read_plan"


def _key(slug: str, version: str) -> str:
    return f"schema:plan:{slug}:{version}"


def tenant_plan_release(tenant: Tenant) -> Release | None:
    version = tenant.desired_release or tenant.current_release
    if not version:
        return None
    return Release.objects.filter(version=version).prefetch_related("migrations").first()


def _as_values(plan: PlanResult) -> dict[str, Any]:
    return {
        "current_version": plan.current_version,
        "applied": [asdict(row) for row in plan.applied],
        "pending": [{"name": m.name, "no_transaction": m.no_transaction} for m in plan.pending],
        "error": str(plan.error) if plan.error else "",
    }


def schema_plan_read(*, slug: str) -> Reading | None:
    """Worker side: read the tenant's history table and store its plan (None: no release)."""
    tenant = Tenant.objects.filter(slug=slug).first()
    release = tenant_plan_release(tenant) if tenant else None
    if tenant is None or release is None:
        return None

    def read() -> dict[str, Any]:
        try:
            target = database_target(tenant)
        except RuntimeError as exc:
            return {"current_version": None, "applied": [], "pending": [], "error": str(exc)}
        return _as_values(plan_database(target=target, migrations=release_specs(release)))

    return reading_take(_key(slug, release.version), read)


def schema_plan_reading(tenant: Tenant, release: Release) -> Reading:
    """The plan a worker read last (never reads it here); asks for a fresh one when due."""
    return reading_get(
        _key(tenant.slug, release.version),
        fresh_s=settings.HEALTH_CACHE_SECONDS,
        task=READ_TASK,
        args=[tenant.slug],
    )

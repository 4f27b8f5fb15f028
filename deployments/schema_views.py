"""Where every tenant's schema stands (the fleet), and one tenant's pending migrations."""

from __future__ import annotations

from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from deployments.models import Release, ReleaseMigration, SchemaStatus
from deployments.schema_plans import schema_plan_reading, tenant_plan_release
from opsconsole.accounts.access import viewer_required
from tenants.models import Tenant, TenantStatus
from tenants.scope import visible_tenant_or_404, visible_tenants


@viewer_required
def schema_fleet(request: HttpRequest) -> HttpResponse:
    tenants = list(
        visible_tenants(request.user)
        .exclude(status=TenantStatus.OFFBOARDED)
        .select_related("schema")
        .order_by("slug")
    )
    # The highest migration version of every release, in one query.
    latest = dict(
        ReleaseMigration.objects.values("release__version")
        .annotate(top=Max("version"))
        .values_list("release__version", "top")
    )
    rows = []
    for tenant in tenants:
        schema = getattr(tenant, "schema", None)
        target = latest.get(tenant.desired_release or tenant.current_release)
        version = schema.version if schema else None
        rows.append(
            {
                "tenant": tenant,
                "schema": schema,
                "version": version,
                "target": target,
                "behind": (target or 0) - (version or 0) if target else 0,
                "failed": bool(schema and schema.status == SchemaStatus.FAILED),
            }
        )
    # Failed first, then the furthest behind, then by name.
    rows.sort(key=lambda r: (not r["failed"], -r["behind"], r["tenant"].slug))
    by_version: dict[str, int] = {}
    for row in rows:
        key = "none" if row["version"] is None else str(row["version"])
        by_version[key] = by_version.get(key, 0) + 1
    widest = max(by_version.values(), default=1)
    return render(
        request,
        "deployments/schema_fleet.html",
        {
            "rows": rows,
            "by_version": [(v, n, round(100 * n / widest)) for v, n in sorted(by_version.items())],
            "failed": sum(r["failed"] for r in rows),
        },
    )


@viewer_required
def schema_plan(request: HttpRequest, slug: str) -> HttpResponse:
    """The migrations a tenant's database still lacks, as a worker last read them (the web
    process never connects to a tenant database); htmx polls while a reading is due."""
    tenant = visible_tenant_or_404(request.user, slug=slug)
    release = tenant_plan_release(tenant)
    reading = schema_plan_reading(tenant, release) if release else None
    template = "deployments/schema_plan.html"
    if getattr(request, "htmx", False):
        # The fragment polls itself only while the reading is due (see the template).
        template += "#plan"
    return render(request, template, _plan_context(tenant, release, reading))


def _plan_context(tenant: Tenant, release: Release | None, reading) -> dict:
    return {
        "tenant": tenant,
        "release": release,
        "reading": reading,
        "plan": reading.value if reading else None,
        "error": "" if release else "The tenant has no release yet.",
    }

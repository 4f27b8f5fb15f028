"""Where every tenant's schema stands (the fleet), and one tenant's pending migrations."""

from __future__ import annotations

from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from deployments.migration_runner import plan_database
from deployments.models import Release, ReleaseMigration, SchemaStatus
from deployments.tenant_release import database_target, release_specs
from opsconsole.accounts.access import viewer_required
from tenants.models import Tenant, TenantStatus


@viewer_required
def schema_fleet(request: HttpRequest) -> HttpResponse:
    tenants = list(
        Tenant.objects.exclude(status=TenantStatus.OFFBOARDED)
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
    """The migrations a tenant's database still lacks (one read of its history table)."""
    tenant = get_object_or_404(Tenant, slug=slug)
    version = tenant.desired_release or tenant.current_release
    release = Release.objects.filter(version=version).prefetch_related("migrations").first()
    plan = None
    error = ""
    if release is None:
        error = "The tenant has no release yet."
    else:
        try:
            plan = plan_database(target=database_target(tenant), migrations=release_specs(release))
        except RuntimeError as exc:
            error = str(exc)
    return render(
        request,
        "deployments/schema_plan.html",
        {"tenant": tenant, "release": release, "plan": plan, "error": error},
    )

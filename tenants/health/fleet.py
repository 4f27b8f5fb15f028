"""Fleet health: every tenant's status, error rate and p95 duration over the last hour.

Per region, all tenants' Lambda numbers come from batched GetMetricData calls (500
queries each): invocations and errors in standard batches, p95 duration in batches of its
own (a failing percentile must not lose the rest). Alarms come from one DescribeAlarms
call for the alarms in ALARM state (rarely more than a page). Both are cached for a
minute, so however many people look, a region costs
ceil(2 x tenants / 500) + ceil(tenants / 500) GetMetricData calls a minute at most.

The page itself reads the tenants (one query), the missing resource records (one query)
and the cache: the same number of SQL queries for 10 tenants or 5,000.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from opsconsole.aws import cloudwatch
from tenants import naming
from tenants.health.cache import Cached, cached_fetch
from tenants.health.metrics import MetricDef, metric_query
from tenants.health.status import DEGRADED, DOWN, HEALTHY, Signals, assess, error_rate
from tenants.models import ResourceStatus, Tenant, TenantResource, TenantStatus

FLEET_PERIOD = 3600
# Query id suffixes: (metric name, statistic).
STANDARD = {"inv": ("Invocations", "Sum"), "err": ("Errors", "Sum")}
PERCENTILE = {"p95": ("Duration", "p95")}
METRICS_PER_TENANT = len(STANDARD) + len(PERCENTILE)
CRITICAL_KINDS = {"function", "alias", "api", "database", "db_instance", "db_cluster"}

_ALARM_DESCRIPTION = "opsconsole tenant "


def _queries(slugs: list[str], metrics: dict[str, tuple[str, str]]) -> list[dict]:
    queries = []
    for i, slug in enumerate(slugs):
        function = naming.function_name(slug)
        dims = (("FunctionName", function), ("Resource", f"{function}:{naming.ALIAS}"))
        for suffix, (name, stat) in metrics.items():
            metric = MetricDef(f"t{i}_{suffix}", "AWS/Lambda", name, stat, "", "")
            queries.append(metric_query(metric, dims, FLEET_PERIOD, metric.id))
    return queries


def _window() -> tuple[datetime, datetime]:
    end = (int(time.time()) // 60 + 1) * 60
    return datetime.fromtimestamp(end - FLEET_PERIOD, UTC), datetime.fromtimestamp(end, UTC)


def _by_slug(
    slugs: list[str], results: dict[str, dict], suffixes: Iterable[str]
) -> dict[str, tuple[float | None, ...]]:
    out = {}
    for i, slug in enumerate(slugs):
        row = []
        for suffix in suffixes:
            values = results.get(f"t{i}_{suffix}", {}).get("values") or []
            row.append(sum(values) if values else None)
        out[slug] = tuple(row)
    return out


def _alarm_slug(alarm: dict) -> str:
    description = alarm.get("AlarmDescription") or ""
    if description.startswith(_ALARM_DESCRIPTION):
        return description[len(_ALARM_DESCRIPTION) :]
    return ""


def fetch_standard(region: str, slugs: list[str]) -> dict[str, Any]:
    """The uncached read: invocations and errors of every tenant, alarms in ALARM."""
    start, end = _window()
    results, calls = cloudwatch.get_metric_data_batched(
        queries=_queries(slugs, STANDARD),
        start=start,
        end=end,
        region=region,
        workers=settings.HEALTH_FLEET_WORKERS,
    )
    alarms: dict[str, list[str]] = {}
    for alarm in cloudwatch.describe_alarms_in_state(prefix=f"{naming.PREFIX}-", region=region):
        slug = _alarm_slug(alarm)
        if slug:
            alarms.setdefault(slug, []).append(alarm["AlarmName"])
    return {
        "numbers": _by_slug(slugs, results, STANDARD),
        "alarms": alarms,
        "calls": calls,
    }


def fetch_percentiles(region: str, slugs: list[str]) -> dict[str, Any]:
    start, end = _window()
    results, calls = cloudwatch.get_metric_data_batched(
        queries=_queries(slugs, PERCENTILE),
        start=start,
        end=end,
        region=region,
        workers=settings.HEALTH_FLEET_WORKERS,
    )
    return {"p95": {s: v[0] for s, v in _by_slug(slugs, results, PERCENTILE).items()}, "calls": calls}


@dataclass
class RegionSnapshot:
    region: str
    standard: Cached[dict]
    percentile: Cached[dict]


def fleet_snapshot(
    regions: Iterable[str], *, load_slugs: Callable[[], dict[str, list[str]]]
) -> list[RegionSnapshot]:
    """Cached fleet numbers per region. ``load_slugs`` runs (once) only on a cache miss."""
    loaded: dict[str, list[str]] | None = None

    def slugs_of(region: str) -> list[str]:
        nonlocal loaded
        if loaded is None:
            loaded = load_slugs()
        return loaded.get(region, [])

    snapshots = []
    for region in sorted(set(regions)):
        standard = cached_fetch(
            f"health:fleet:{region}:std", lambda r=region: fetch_standard(r, slugs_of(r))
        )
        percentile = cached_fetch(
            f"health:fleet:{region}:pct",
            lambda r=region: fetch_percentiles(r, slugs_of(r)),
            retry_s=settings.HEALTH_PERCENTILE_RETRY_SECONDS,
        )
        snapshots.append(RegionSnapshot(region, standard, percentile))
    return snapshots


def fleet_slugs() -> dict[str, list[str]]:
    """Every tenant the fleet numbers cover (all but offboarded), by region, sorted."""
    by_region: dict[str, list[str]] = {}
    rows = (
        Tenant.objects.exclude(status=TenantStatus.OFFBOARDED)
        .order_by("region", "slug")
        .values_list("region", "slug")
    )
    for region, slug in rows:
        by_region.setdefault(region, []).append(slug)
    return by_region


# --- the table ---------------------------------------------------------------------------

_STATUS_LABELS = dict(TenantStatus.choices)
_ROW_FIELDS = (
    "id",
    "slug",
    "name",
    "status",
    "status_reason",
    "region",
    "ring",
    "isolation",
    "current_release",
    "desired_release",
    "created_at",
)


@dataclass(slots=True)
class FleetRow:
    id: int
    slug: str
    name: str
    status: str
    status_reason: str
    region: str
    ring: int
    isolation: str
    current_release: str
    desired_release: str
    created_at: datetime
    health: str = HEALTHY
    health_reason: str = ""
    invocations: float | None = None
    errors: float | None = None
    error_rate: float | None = None
    p95_ms: float | None = None

    @property
    def status_display(self) -> str:
        return _STATUS_LABELS.get(self.status, self.status)

    @property
    def error_pct(self) -> float | None:
        return None if self.error_rate is None else self.error_rate * 100


@dataclass
class FleetTable:
    rows: list[FleetRow]
    health_counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    age_s: int | None = None
    calls: int = 0  # GetMetricData calls this page view made (0 on a warm cache)


def _missing_by_tenant() -> dict[int, list[tuple[str, str]]]:
    rows = TenantResource.objects.filter(
        status__in=[ResourceStatus.MISSING, ResourceStatus.DELETED],
        tenant__status__in=[TenantStatus.ACTIVE, TenantStatus.SUSPENDED, TenantStatus.FAILED],
    ).values_list("tenant_id", "kind", "name")
    out: dict[int, list[tuple[str, str]]] = {}
    for tenant_id, kind, name in rows:
        out.setdefault(tenant_id, []).append((kind, name))
    return out


_SORTS: dict[str, Callable[[FleetRow], Any]] = {
    # Worst first; unknown numbers last.
    "health": lambda r: ({DOWN: 0, DEGRADED: 1, HEALTHY: 2}[r.health], r.slug),
    "errors": lambda r: (r.error_rate is None, -(r.error_rate or 0), r.slug),
    "p95": lambda r: (r.p95_ms is None, -(r.p95_ms or 0), r.slug),
}
FLEET_SORTS = tuple(_SORTS)


def _note(what: str, cached: Cached) -> str:
    if cached.value is None:
        return f"{what} unavailable: {cached.error}"
    return f"{what} from {cached.age_s} s ago: {cached.error}"


def fleet_table(tenants: QuerySet[Tenant], *, health: str = "", sort: str = "") -> FleetTable:
    """The rows of ``tenants`` (already filtered and ordered) with their health; filtered
    by ``health`` and sorted by a metric when ``sort`` names one."""
    rows = [FleetRow(**values) for values in tenants.values(*_ROW_FIELDS)]
    missing = _missing_by_tenant()
    snapshots = fleet_snapshot({r.region for r in rows}, load_slugs=fleet_slugs)
    numbers: dict[str, tuple] = {}
    alarms: dict[str, list[str]] = {}
    p95: dict[str, float | None] = {}
    unavailable: dict[str, str] = {}  # region: why no numbers at all
    notes: list[str] = []
    ages = []
    calls = 0
    for snap in snapshots:
        standard, percentile = snap.standard, snap.percentile
        if standard.value is not None:
            numbers.update(standard.value["numbers"])
            alarms.update(standard.value["alarms"])
            calls += standard.value["calls"] if standard.refreshed else 0
            ages.append(standard.age_s or 0)
        else:
            unavailable[snap.region] = standard.error
        if standard.error:
            notes.append(_note(f"Metrics of {snap.region}", standard))
        if percentile.value is not None:
            p95.update(percentile.value["p95"])
            calls += percentile.value["calls"] if percentile.refreshed else 0
        if percentile.error:
            notes.append(_note(f"p95 duration of {snap.region}", percentile))

    counts = dict.fromkeys((HEALTHY, DEGRADED, DOWN), 0)
    for row in rows:
        inv, err = numbers.get(row.slug, (None, None))
        row.invocations, row.errors = inv, err
        row.error_rate = error_rate(err, inv)
        row.p95_ms = p95.get(row.slug)
        gone = missing.get(row.id, [])
        row.health, row.health_reason = assess(
            Signals(
                tenant_status=row.status,
                tenant_status_reason=row.status_reason,
                missing=[f"{kind} {name}" for kind, name in gone],
                missing_critical=[f"{k} {n}" for k, n in gone if k in CRITICAL_KINDS],
                alarms_firing=alarms.get(row.slug, []),
                invocations=inv,
                errors=err,
                metrics_error=unavailable.get(row.region, ""),
            )
        )
        counts[row.health] += 1
    if health:
        rows = [r for r in rows if r.health == health]
    if sort in _SORTS:
        rows.sort(key=_SORTS[sort])
    return FleetTable(
        rows=rows,
        health_counts=counts,
        notes=notes,
        age_s=max(ages) if ages else None,
        calls=calls,
    )

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
from opsconsole.core.humanize import duration_text
from tenants import naming
from tenants.health.cache import Cached, cached_fetch
from tenants.health.metrics import MetricDef, metric_query
from tenants.health.status import (
    DEGRADED,
    DOWN,
    HEALTHY,
    Signals,
    assess,
    error_rate,
    rate_finding,
)
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


def _by_suffix(
    slugs: list[str], results: dict[str, dict], suffixes: Iterable[str]
) -> dict[str, dict[str, float]]:
    """{suffix: {slug: sum over the window}}, leaving out tenants without a datapoint.
    Flat dicts of floats: a cached snapshot of 5,000 tenants unpickles into a handful of
    objects, not thousands (the page stays clear of the garbage collector)."""
    out: dict[str, dict[str, float]] = {suffix: {} for suffix in suffixes}
    for i, slug in enumerate(slugs):
        for suffix in suffixes:
            values = results.get(f"t{i}_{suffix}", {}).get("values")
            if values:
                out[suffix][slug] = sum(values)
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
    return {**_by_suffix(slugs, results, STANDARD), "alarms": alarms, "calls": calls}


def fetch_percentiles(region: str, slugs: list[str]) -> dict[str, Any]:
    start, end = _window()
    results, calls = cloudwatch.get_metric_data_batched(
        queries=_queries(slugs, PERCENTILE),
        start=start,
        end=end,
        region=region,
        workers=settings.HEALTH_FLEET_WORKERS,
    )
    return {**_by_suffix(slugs, results, PERCENTILE), "calls": calls}


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
#
# Two passes. Every tenant matching the filters gets its health level, error rate and p95
# from a narrow query and the cached numbers (what sorting and the health filter need);
# only the rows of the page shown are then read in full and given their reasons.

_STATUS_LABELS = dict(TenantStatus.choices)
_DETAIL_FIELDS = (
    "id",
    "name",
    "ring",
    "isolation",
    "current_release",
    "desired_release",
    "created_at",
)


@dataclass(slots=True)
class FleetRow:
    """One row of the page shown."""

    id: int
    slug: str
    status: str
    status_reason: str
    region: str
    health: str
    invocations: float | None
    errors: float | None
    error_rate: float | None
    p95_ms: float | None
    health_reason: str = ""
    name: str = ""
    ring: int = 0
    isolation: str = ""
    current_release: str = ""
    desired_release: str = ""
    created_at: datetime | None = None

    @property
    def status_display(self) -> str:
        return _STATUS_LABELS.get(self.status, self.status)

    @property
    def error_pct(self) -> float | None:
        return None if self.error_rate is None else self.error_rate * 100


def _missing_by_tenant() -> dict[int, list[tuple[str, str]]]:
    rows = TenantResource.objects.filter(
        status__in=[ResourceStatus.MISSING, ResourceStatus.DELETED],
        tenant__status__in=[TenantStatus.ACTIVE, TenantStatus.SUSPENDED, TenantStatus.FAILED],
    ).values_list("tenant_id", "kind", "name")
    out: dict[int, list[tuple[str, str]]] = {}
    for tenant_id, kind, name in rows:
        out.setdefault(tenant_id, []).append((kind, name))
    return out


FLEET_SORTS = ("health", "errors", "p95")
_LEVEL_ORDER = {DOWN: 0, DEGRADED: 1, HEALTHY: 2}
_LAST = float("inf")


def _note(what: str, cached: Cached, retry_s: int) -> str:
    """A sentence a person can act on: what is missing or old, why, and when the page asks
    again (the cache does not ask AWS again for ``retry_s`` after a failure; the fleet
    page reloads its table meanwhile, so nobody has to)."""
    again = f"The page tries again in about {duration_text(retry_s)}."
    if cached.value is None:
        return f"{what} unavailable right now: {cached.error}. {again}"
    return f"{what} from {duration_text(cached.age_s or 0)} ago: {cached.error}. {again}"


# (id, slug, status, status_reason, region): all a tenant's level needs from the database.
_BASE_FIELDS = ("id", "slug", "status", "status_reason", "region")


@dataclass
class FleetTable:
    """The fleet's health. ``positions`` (filtered and sorted) index the tenants read;
    paginate them and ``detail`` the page's."""

    positions: list[int]
    health_counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    # When the notes say CloudWatch failed: how soon the page reloads its table to retry.
    retry_s: int = 0
    age_s: int | None = None
    calls: int = 0  # GetMetricData calls this page view made (0 on a warm cache)
    base: list[tuple] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    invocations: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    p95: dict[str, float] = field(default_factory=dict)
    missing: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    alarms: dict[str, list[str]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def signals(self, tenant_id, slug, status, status_reason, region) -> Signals:
        gone = self.missing.get(tenant_id, [])
        return Signals(
            tenant_status=status,
            tenant_status_reason=status_reason,
            missing=[f"{kind} {name}" for kind, name in gone],
            missing_critical=[f"{k} {n}" for k, n in gone if k in CRITICAL_KINDS],
            alarms_firing=self.alarms.get(slug, []),
            invocations=self.invocations.get(slug),
            errors=self.errors.get(slug),
            metrics_error=self.unavailable.get(region, ""),
        )

    def level(self, tenant_id, slug, status, status_reason, region) -> str:
        """A tenant's status. Most are active with nothing missing or firing: theirs is
        the error rate's verdict alone, as ``assess`` would find it."""
        if (
            status == TenantStatus.ACTIVE
            and tenant_id not in self.missing
            and slug not in self.alarms
            and region not in self.unavailable
        ):
            finding = rate_finding(self.errors.get(slug), self.invocations.get(slug), "")
            return finding[0] if finding else HEALTHY
        return assess(self.signals(tenant_id, slug, status, status_reason, region))[0]

    def detail(self, positions: list[int]) -> list[FleetRow]:
        """The rows at ``positions``, read in full (one query), with their reasons."""
        rows = []
        for position in positions:
            tenant_id, slug, status, status_reason, region = self.base[position]
            inv, err = self.invocations.get(slug), self.errors.get(slug)
            rows.append(
                FleetRow(
                    id=tenant_id,
                    slug=slug,
                    status=status,
                    status_reason=status_reason,
                    region=region,
                    health=self.levels[position],
                    invocations=inv,
                    errors=err,
                    error_rate=error_rate(err, inv),
                    p95_ms=self.p95.get(slug),
                    health_reason=assess(self.signals(*self.base[position]))[1],
                )
            )
        details = Tenant.objects.filter(id__in=[r.id for r in rows]).values(*_DETAIL_FIELDS)
        by_id = {values["id"]: values for values in details}
        for row in rows:
            for key, value in by_id.get(row.id, {}).items():
                setattr(row, key, value)
        return rows


def fleet_table(tenants: QuerySet[Tenant], *, health: str = "", sort: str = "") -> FleetTable:
    """Every tenant of ``tenants`` (already filtered and ordered) with its health level,
    filtered by ``health`` and sorted by health, error rate or p95 when ``sort`` says.

    SQL: the tenants' ids, slugs and statuses (one query) and the missing resource records
    (one query); the numbers come from the cache.
    """
    base = list(tenants.values_list(*_BASE_FIELDS))
    table = FleetTable(
        positions=[], health_counts=dict.fromkeys((HEALTHY, DEGRADED, DOWN), 0), base=base
    )
    table.missing = _missing_by_tenant()
    ages = []
    for snap in fleet_snapshot({row[4] for row in base}, load_slugs=fleet_slugs):
        standard, percentile = snap.standard, snap.percentile
        if standard.value is not None:
            table.invocations.update(standard.value["inv"])
            table.errors.update(standard.value["err"])
            table.alarms.update(standard.value["alarms"])
            table.calls += standard.value["calls"] if standard.refreshed else 0
            ages.append(standard.age_s or 0)
        else:
            table.unavailable[snap.region] = standard.error
        if standard.error:
            retry = settings.HEALTH_RETRY_SECONDS
            table.retry_s = min(table.retry_s or retry, retry)
            table.notes.append(_note(f"Metrics of {snap.region} are", standard, retry))
        if percentile.value is not None:
            table.p95.update(percentile.value["p95"])
            table.calls += percentile.value["calls"] if percentile.refreshed else 0
        if percentile.error:
            retry = settings.HEALTH_PERCENTILE_RETRY_SECONDS
            table.retry_s = min(table.retry_s or retry, retry)
            table.notes.append(_note(f"p95 duration of {snap.region} is", percentile, retry))
    table.age_s = max(ages) if ages else None

    levels = table.levels = [table.level(*row) for row in base]
    counts = table.health_counts
    for level in levels:
        counts[level] += 1
    positions = list(range(len(base)))
    if health:
        positions = [i for i in positions if levels[i] == health]
    # The database ordered by slug for these sorts; a stable sort on one number keeps
    # that order among equals. Worst first, unknown numbers last.
    if sort == "health":
        positions.sort(key=lambda i: _LEVEL_ORDER[levels[i]])
    elif sort == "errors":
        inv, err = table.invocations, table.errors

        def rate_key(i: int) -> float:
            rate = error_rate(err.get(base[i][1]), inv.get(base[i][1]))
            return _LAST if rate is None else -rate

        positions.sort(key=rate_key)
    elif sort == "p95":
        p95 = table.p95
        positions.sort(key=lambda i: -p95.get(base[i][1], -_LAST))
    table.positions = positions
    return table

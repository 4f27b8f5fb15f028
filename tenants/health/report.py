"""Everything a tenant's health page shows, gathered in one place.

AWS reads (each cached for a minute, see ``tenants.health.cache``): one GetMetricData call
for the standard statistics, one for percentiles, one DescribeAlarms, FilterLogEvents for
the error lines. A shared-instance tenant's own database numbers come from the sample of
``pg_stat_database`` a worker last took (``tenants.health.readings``): the web process
never connects to a tenant database. SQL: the tenant's resource records, its deployment
jobs and its schema row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.utils.safestring import SafeString

from tenants import naming
from tenants.charts import Marker, Series, time_chart
from tenants.health.alarms import AlarmState, tenant_alarms
from tenants.health.cache import Cached
from tenants.health.function_state import function_state
from tenants.health.history import DeployEvent, deployment_history
from tenants.health.log_errors import ErrorLines, recent_errors
from tenants.health.metrics import (
    RANGES,
    MissingResource,
    Range,
    SeriesSet,
    Target,
    aligned_window,
    missing_resources,
    tenant_metrics,
    tenant_targets,
)
from tenants.health.readings import Reading
from tenants.health.shared_db import SharedDatabaseReport, shared_database
from tenants.health.status import assess, signals_for
from tenants.models import Isolation, Tenant


@dataclass(frozen=True)
class Line:
    query_id: str
    label: str
    percentile: bool = False
    color: str = ""
    area: bool = False
    dashed: bool = False


@dataclass(frozen=True)
class ChartSpec:
    title: str
    unit: str
    lines: tuple[Line, ...]


_RED, _AMBER, _BLUE, _GREEN = "#b42318", "#a86a00", "#2f5bd3", "#1d7a46"

CHARTS: dict[str, tuple[ChartSpec, ...]] = {
    "function": (
        ChartSpec("Invocations", "count", (Line("fn_invocations", "Invocations", area=True),)),
        ChartSpec(
            "Errors and throttles",
            "count",
            (
                Line("fn_errors", "Errors", color=_RED),
                Line("fn_throttles", "Throttles", color=_AMBER),
            ),
        ),
        ChartSpec(
            "Duration",
            "ms",
            (
                Line("fn_duration_avg", "Average"),
                Line("fn_duration_p95", "p95", percentile=True, color=_AMBER, dashed=True),
            ),
        ),
        ChartSpec(
            "Concurrent executions", "count", (Line("fn_concurrency", "Maximum", color=_GREEN),)
        ),
    ),
    "api": (
        ChartSpec("Requests", "count", (Line("api_requests", "Requests", area=True),)),
        ChartSpec(
            "4xx and 5xx",
            "count",
            (Line("api_4xx", "4xx", color=_AMBER), Line("api_5xx", "5xx", color=_RED)),
        ),
        ChartSpec(
            "Latency",
            "ms",
            (
                Line("api_latency_avg", "Average"),
                Line("api_integration_latency", "Integration", color=_GREEN),
                Line("api_latency_p95", "p95", percentile=True, color=_AMBER, dashed=True),
            ),
        ),
    ),
    "database": (
        ChartSpec("CPU", "percent", (Line("db_cpu", "Average", area=True),)),
        ChartSpec("Connections", "count", (Line("db_connections", "Maximum"),)),
        ChartSpec("Free storage", "bytes", (Line("db_free_storage", "Minimum", color=_GREEN),)),
        ChartSpec("Capacity", "acu", (Line("db_capacity", "Average", color=_GREEN),)),
    ),
}
GROUP_TITLES = {"function": "Function", "api": "HTTP API", "database": "Database"}


@dataclass
class ChartGroup:
    key: str
    title: str
    subtitle: str
    charts: list[SafeString]


@dataclass
class HealthReport:
    tenant: Tenant
    range: Range
    ranges: list[Range]
    period: int
    status: str
    reason: str
    groups: list[ChartGroup]
    notes: list[str]
    missing: list[MissingResource]
    alarms: Cached[list[AlarmState]]
    errors: Cached[ErrorLines]
    history: list[DeployEvent]
    schema: object | None
    shared_db: SharedDatabaseReport | None = None
    shared_db_note: str = ""
    shared_db_pending: bool = False  # no sample yet: a worker was asked for one
    shared_db_age_s: int | None = None
    age_s: int | None = None
    refresh_s: int = field(default_factory=lambda: settings.HEALTH_CACHE_SECONDS)

    @property
    def errors_group(self) -> str:
        return naming.log_group_name(self.tenant.slug)

    @property
    def error_pattern(self) -> str:
        return settings.HEALTH_ERROR_LOG_PATTERN

    @property
    def age(self) -> str:
        return age_text(self.age_s)

    @property
    def shared_db_age(self) -> str:
        return age_text(self.shared_db_age_s)

    @property
    def poll_s(self) -> int:
        # While a worker takes the first database sample, look again soon.
        return min(self.refresh_s, 3) if self.shared_db_pending else self.refresh_s

    @property
    def period_label(self) -> str:
        return f"{self.period // 60} min" if self.period < 3600 else f"{self.period // 3600} h"


def age_text(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _note(what: str, cached: Cached) -> str:
    if cached.value is None:
        return f"{what}: unavailable ({cached.error})."
    return f"{what}: showing the last good answer, {age_text(cached.age_s)} old ({cached.error})."


def _reading_note(what: str, reading: Reading) -> str:
    if reading.value is None:
        return f"{what}: unavailable ({reading.error})."
    age = age_text(reading.age_s)
    return f"{what}: showing the last good reading, {age} old ({reading.error})."


def _group_charts(
    target: Target,
    standard: SeriesSet | None,
    percentile: Cached[SeriesSet] | None,
    *,
    start: int,
    end: int,
    period: int,
    markers: list[Marker],
) -> list[SafeString]:
    asked = {m.id for m in target.metrics}
    pct_set = percentile.value if percentile is not None else None
    charts = []
    for spec in CHARTS[target.group]:
        lines = [line for line in spec.lines if line.query_id in asked]
        if not lines:
            continue
        series, note = [], ""
        for line in lines:
            source = pct_set if line.percentile else standard
            if line.percentile and source is None:
                reason = percentile.error if percentile is not None else "not asked"
                note = f"p95 unavailable: {reason}"
                continue
            points = source.points(line.query_id) if source is not None else []
            series.append(
                Series(line.label, points, color=line.color, area=line.area, dashed=line.dashed)
            )
        charts.append(
            time_chart(
                title=spec.title,
                unit=spec.unit,
                series=series,
                start=start,
                end=end,
                period=period,
                markers=markers,
                note=note,
            )
        )
    return charts


def tenant_health_report(tenant: Tenant, *, range_key: str) -> HealthReport:
    resources = list(tenant.resources.all())
    missing = missing_resources(tenant, resources)
    targets = tenant_targets(tenant, resources)
    metrics = tenant_metrics(tenant, targets, range_key=range_key)
    standard = metrics.standard
    if standard.value is not None:
        start, end, period = standard.value.start, standard.value.end, standard.value.period
    else:
        period = metrics.period
        start, end = aligned_window(metrics.range.seconds, period)
    alarms = tenant_alarms(tenant, resources)
    errors = recent_errors(tenant)
    history = deployment_history(tenant)
    markers = [
        Marker(int(e.at.timestamp()), f"{e.label} #{e.job_id} {e.release}".strip())
        for e in history
        if e.status == "succeeded"
    ]

    notes = []
    if standard.error:
        notes.append(_note("CloudWatch metrics", standard))
    if standard.value is not None and standard.value.incomplete:
        notes.append("CloudWatch answered in part: " + ", ".join(standard.value.incomplete))
    if metrics.percentile is not None and metrics.percentile.stale:
        notes.append(_note("p95 percentiles", metrics.percentile))
    if alarms.error:
        notes.append(_note("Alarm states", alarms))
    said = function_state(tenant)
    if said.value:
        notes.append(f"Lambda says of {naming.function_name(tenant.slug)}: {said.value}")

    groups = [
        ChartGroup(
            key=target.group,
            title=GROUP_TITLES[target.group],
            subtitle=target.label,
            charts=_group_charts(
                target,
                standard.value,
                metrics.percentile,
                start=start,
                end=end,
                period=period,
                markers=markers,
            ),
        )
        for target in targets
    ]

    shared_report, shared_note, shared_pending, shared_age = None, "", False, None
    if tenant.isolation == Isolation.SHARED and any(r.kind == "database" for r in resources):
        shared_report, sample = shared_database(tenant, resources)
        shared_pending, shared_age = sample.pending, sample.age_s
        if sample.error:
            shared_note = _reading_note("Database numbers", sample)

    status, reason = assess(signals_for(tenant, missing=missing, metrics=standard, alarms=alarms))
    return HealthReport(
        tenant=tenant,
        range=metrics.range,
        ranges=list(RANGES.values()),
        period=period,
        status=status,
        reason=reason,
        groups=groups,
        notes=notes,
        missing=missing,
        alarms=alarms,
        errors=errors,
        history=history,
        schema=_schema(tenant),
        shared_db=shared_report,
        shared_db_note=shared_note,
        shared_db_pending=shared_pending,
        shared_db_age_s=shared_age,
        age_s=standard.age_s,
    )


def _schema(tenant: Tenant):
    """The tenant's TenantSchema row (deployments app), or None."""
    from django.core.exceptions import ObjectDoesNotExist

    try:
        return tenant.schema
    except ObjectDoesNotExist:
        return None

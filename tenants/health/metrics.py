"""Which CloudWatch series a tenant's health page shows, and how they are asked for.

A page asks for all its standard statistics in ONE GetMetricData call. Percentiles (p95)
go in a second call of their own: where they fail (moto fails a whole call that has one)
the rest of the page still has its numbers.

Dimensions per tenant:
- Lambda: FunctionName + Resource "<function>:live" (the alias traffic goes through);
- HTTP API: ApiId + Stage "$default";
- RDS: DBInstanceIdentifier (dedicated, and the shared instance a shared tenant lives
  on) or DBClusterIdentifier (Aurora Serverless v2).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings

from opsconsole.aws import cloudwatch
from tenants import naming
from tenants.health.cache import Cached, cached_fetch
from tenants.models import Isolation, ResourceStatus, Tenant, TenantResource, TenantStatus


@dataclass(frozen=True)
class Range:
    key: str
    label: str
    seconds: int


RANGES = {
    "1h": Range("1h", "Last hour", 3600),
    "1d": Range("1d", "Last day", 86400),
    "1w": Range("1w", "Last week", 7 * 86400),
}
DEFAULT_RANGE = "1h"

# Periods to choose from, finest first (CloudWatch keeps 1-minute data for 15 days).
PERIODS = (60, 120, 300, 600, 900, 1800, 3600, 10800, 21600, 86400)
# More points than a chart is wide is waste.
MAX_POINTS_PER_SERIES = 360


def choose_period(span_s: int, queries: int) -> int:
    """The finest period that keeps each series chart-sized and the call inside
    GetMetricData's datapoint limit."""
    for period in PERIODS:
        points = math.ceil(span_s / period)
        if (
            points <= MAX_POINTS_PER_SERIES
            and points * max(queries, 1) <= cloudwatch.MAX_DATAPOINTS_PER_CALL
        ):
            return period
    return PERIODS[-1]


def is_percentile(stat: str) -> bool:
    return stat[:1] == "p" and stat[1:].replace(".", "", 1).isdigit()


@dataclass(frozen=True)
class MetricDef:
    id: str  # GetMetricData query id: lowercase first, letters, digits, underscores
    namespace: str
    name: str
    stat: str
    unit: str  # count | ms | percent | bytes | acu
    label: str


FUNCTION_METRICS = (
    MetricDef("fn_invocations", "AWS/Lambda", "Invocations", "Sum", "count", "Invocations"),
    MetricDef("fn_errors", "AWS/Lambda", "Errors", "Sum", "count", "Errors"),
    MetricDef("fn_throttles", "AWS/Lambda", "Throttles", "Sum", "count", "Throttles"),
    MetricDef("fn_duration_avg", "AWS/Lambda", "Duration", "Average", "ms", "Average"),
    MetricDef("fn_duration_p95", "AWS/Lambda", "Duration", "p95", "ms", "p95"),
    MetricDef(
        "fn_concurrency", "AWS/Lambda", "ConcurrentExecutions", "Maximum", "count", "Concurrent"
    ),
)
API_METRICS = (
    MetricDef("api_requests", "AWS/ApiGateway", "Count", "Sum", "count", "Requests"),
    MetricDef("api_4xx", "AWS/ApiGateway", "4xx", "Sum", "count", "4xx"),
    MetricDef("api_5xx", "AWS/ApiGateway", "5xx", "Sum", "count", "5xx"),
    MetricDef("api_latency_avg", "AWS/ApiGateway", "Latency", "Average", "ms", "Latency"),
    MetricDef(
        "api_integration_latency",
        "AWS/ApiGateway",
        "IntegrationLatency",
        "Average",
        "ms",
        "Integration latency",
    ),
    MetricDef("api_latency_p95", "AWS/ApiGateway", "Latency", "p95", "ms", "Latency p95"),
)
_DB_CPU = MetricDef("db_cpu", "AWS/RDS", "CPUUtilization", "Average", "percent", "CPU")
_DB_CONNECTIONS = MetricDef(
    "db_connections", "AWS/RDS", "DatabaseConnections", "Maximum", "count", "Connections"
)
DB_INSTANCE_METRICS = (
    _DB_CPU,
    _DB_CONNECTIONS,
    MetricDef("db_free_storage", "AWS/RDS", "FreeStorageSpace", "Minimum", "bytes", "Free storage"),
)
DB_CLUSTER_METRICS = (
    _DB_CPU,
    _DB_CONNECTIONS,
    MetricDef("db_capacity", "AWS/RDS", "ServerlessDatabaseCapacity", "Average", "acu", "Capacity"),
)
SHARED_DB_METRICS = (_DB_CPU, _DB_CONNECTIONS)


@dataclass(frozen=True)
class Target:
    """One resource whose metrics a page shows."""

    group: str  # function | api | database
    label: str
    dimensions: tuple[tuple[str, str], ...]
    metrics: tuple[MetricDef, ...]


@dataclass(frozen=True)
class MissingResource:
    kind: str
    name: str
    critical: bool  # without it the tenant serves nothing

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def _present(resources: list[TenantResource], kind: str) -> TenantResource | None:
    for resource in resources:
        if resource.kind == kind and resource.status == ResourceStatus.PRESENT:
            return resource
    return None


def expected_resources(tenant: Tenant) -> list[tuple[str, str, bool]]:
    """(kind, name, critical) of what a provisioned tenant has."""
    slug = tenant.slug
    function = naming.function_name(slug)
    databases = {
        Isolation.SHARED: [("database", naming.db_name(slug), True)],
        Isolation.DEDICATED: [("db_instance", naming.db_instance_id(slug), True)],
        Isolation.SERVERLESS: [("db_cluster", naming.db_cluster_id(slug), True)],
        # The app brings its own database: the console has none of the tenant's to miss.
        Isolation.NONE: [],
    }[Isolation(tenant.isolation)]
    return [
        ("function", function, True),
        ("alias", f"{function}:{naming.ALIAS}", True),
        ("api", naming.api_name(slug), True),
        *databases,
        ("log_group", naming.log_group_name(slug), False),
    ]


def missing_resources(tenant: Tenant, resources: list[TenantResource]) -> list[MissingResource]:
    """What a tenant should have and the records say it does not (absent, missing or
    deleted). Before provisioning finishes nothing counts as missing."""
    if tenant.status in (TenantStatus.PROVISIONING, TenantStatus.OFFBOARDED):
        return []
    missing = []
    for kind, name, critical in expected_resources(tenant):
        if _present(resources, kind) is None:
            missing.append(MissingResource(kind, name, critical))
    for resource in resources:
        if resource.kind == "alarm" and resource.status != ResourceStatus.PRESENT:
            missing.append(MissingResource("alarm", resource.name, False))
    return missing


def tenant_targets(tenant: Tenant, resources: list[TenantResource]) -> list[Target]:
    """The resources a page charts, with their dimensions; a missing one is left out
    (``missing_resources`` names it)."""
    slug = tenant.slug
    targets = []
    function = _present(resources, "function")
    if function is not None:
        name = function.name
        targets.append(
            Target(
                "function",
                f"function {name}, alias {naming.ALIAS}",
                (("FunctionName", name), ("Resource", f"{name}:{naming.ALIAS}")),
                FUNCTION_METRICS,
            )
        )
    api = _present(resources, "api")
    if api is not None and api.identifier:
        targets.append(
            Target(
                "api",
                f"HTTP API {api.identifier}, stage $default",
                (("ApiId", api.identifier), ("Stage", "$default")),
                API_METRICS,
            )
        )
    if tenant.isolation == Isolation.DEDICATED:
        db = _present(resources, "db_instance")
        if db is not None:
            ident = db.identifier or naming.db_instance_id(slug)
            targets.append(
                Target(
                    "database",
                    f"RDS instance {ident}",
                    (("DBInstanceIdentifier", ident),),
                    DB_INSTANCE_METRICS,
                )
            )
    elif tenant.isolation == Isolation.SERVERLESS:
        db = _present(resources, "db_cluster")
        if db is not None:
            ident = db.identifier or naming.db_cluster_id(slug)
            targets.append(
                Target(
                    "database",
                    f"Aurora Serverless v2 cluster {ident}",
                    (("DBClusterIdentifier", ident),),
                    DB_CLUSTER_METRICS,
                )
            )
    elif tenant.isolation == Isolation.SHARED:
        db = _present(resources, "database")
        if db is not None:
            ident = db.identifier or settings.BASELINE["shared_db_instance"]
            targets.append(
                Target(
                    "database",
                    f"shared RDS instance {ident} (all its tenants)",
                    (("DBInstanceIdentifier", ident),),
                    SHARED_DB_METRICS,
                )
            )
    return targets


def metric_query(
    metric: MetricDef, dimensions: tuple[tuple[str, str], ...], period: int, query_id: str
) -> dict:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": metric.namespace,
                "MetricName": metric.name,
                "Dimensions": [{"Name": n, "Value": v} for n, v in dimensions],
            },
            "Period": period,
            "Stat": metric.stat,
        },
        "ReturnData": True,
    }


def build_queries(targets: list[Target], period: int) -> tuple[list[dict], list[dict]]:
    """(standard queries, percentile queries) for the targets, ids = metric ids."""
    standard, percentile = [], []
    for target in targets:
        for metric in target.metrics:
            query = metric_query(metric, target.dimensions, period, metric.id)
            (percentile if is_percentile(metric.stat) else standard).append(query)
    return standard, percentile


def aligned_window(span_s: int, period: int, now: datetime | None = None) -> tuple[int, int]:
    """(start, end) in epoch seconds on period boundaries, ending after the current
    (incomplete) period so the newest minute shows."""
    now_s = int((now or datetime.now(UTC)).timestamp())
    end = (now_s // period + 1) * period
    return end - span_s - period, end


@dataclass
class SeriesSet:
    """What one GetMetricData call answered for a page."""

    start: int
    end: int
    period: int
    series: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)

    def points(self, query_id: str) -> list[tuple[int, float]]:
        timestamps, values = self.series.get(query_id, ([], []))
        return list(zip(timestamps, values, strict=False))

    def total_since(self, query_id: str, since: int) -> float | None:
        """Sum of the datapoints at or after ``since``; None when there are none."""
        values = [v for t, v in self.points(query_id) if t >= since]
        return sum(values) if values else None


def _fetch_series(queries: list[dict], start: int, end: int, period: int, region: str):
    def fetch() -> SeriesSet:
        results = cloudwatch.get_metric_data(
            queries=queries,
            start=datetime.fromtimestamp(start, UTC),
            end=datetime.fromtimestamp(end, UTC),
            region=region,
        )
        out = SeriesSet(start=start, end=end, period=period)
        for query_id, result in results.items():
            out.series[query_id] = (result["timestamps"], result["values"])
            if result["status"] not in ("", "Complete"):
                out.incomplete.append(f"{query_id}: {result['status']}")
        return out

    return fetch


def _key(tenant: Tenant, range_key: str, part: str, queries: list[dict]) -> str:
    # The dimensions are in the key: a tenant whose API was replaced asks anew.
    digest = hashlib.sha1(
        json.dumps(queries, sort_keys=True).encode(), usedforsecurity=False
    ).hexdigest()[:12]
    return f"health:tenant:{tenant.region}:{tenant.slug}:{range_key}:{part}:{digest}"


@dataclass
class TenantMetrics:
    range: Range
    period: int
    standard: Cached[SeriesSet]
    percentile: Cached[SeriesSet] | None  # None: no percentile asked


def tenant_metrics(
    tenant: Tenant,
    targets: list[Target],
    *,
    range_key: str = DEFAULT_RANGE,
    force: bool = False,
    with_percentiles: bool = True,
) -> TenantMetrics:
    """The page's series: one call for the standard statistics, one for percentiles,
    each cached for a minute and falling back to its last answer on failure."""
    span = RANGES[range_key]
    n_queries = sum(len(t.metrics) for t in targets)
    period = choose_period(span.seconds, n_queries)
    standard_q, percentile_q = build_queries(targets, period)
    start, end = aligned_window(span.seconds, period)
    if standard_q:
        standard = cached_fetch(
            _key(tenant, range_key, "std", standard_q),
            _fetch_series(standard_q, start, end, period, tenant.region),
            force=force,
        )
    else:
        standard = Cached(SeriesSet(start=start, end=end, period=period), None)
    percentile = None
    if with_percentiles and percentile_q:
        percentile = cached_fetch(
            _key(tenant, range_key, "pct", percentile_q),
            _fetch_series(percentile_q, start, end, period, tenant.region),
            force=force,
            retry_s=settings.HEALTH_PERCENTILE_RETRY_SECONDS,
        )
    return TenantMetrics(range=span, period=period, standard=standard, percentile=percentile)


def last_hour_numbers(series: SeriesSet | None, *, now: int) -> dict[str, float | None]:
    """Sums over (about) the last hour, for the status: the buckets that start within it."""
    since = now - 3600
    keys = ("fn_invocations", "fn_errors", "fn_throttles", "api_requests", "api_5xx")
    if series is None:
        return dict.fromkeys(keys)
    return {key: series.total_since(key, since) for key in keys}

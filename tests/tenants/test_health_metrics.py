"""Metric queries (dimensions, periods, the percentile split, batches), the status rules
and the SVG charts, without pages."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from django.conf import settings

from opsconsole.aws import cloudwatch
from tenants import naming
from tenants.charts import Marker, Series, format_value, runs, time_chart
from tenants.health.metrics import (
    RANGES,
    build_queries,
    choose_period,
    missing_resources,
    tenant_targets,
)
from tenants.health.status import DEGRADED, DOWN, HEALTHY, Signals, assess
from tenants.models import Isolation, ResourceStatus, Tenant, TenantResource, TenantStatus

from .test_health_pages import API_ID, active_tenant, health_cache_prefix  # noqa: F401


def dims_by_id(tenant: Tenant) -> dict[str, dict[str, str]]:
    targets = tenant_targets(tenant, list(tenant.resources.all()))
    standard, percentile = build_queries(targets, 60)
    return {
        q["Id"]: {d["Name"]: d["Value"] for d in q["MetricStat"]["Metric"]["Dimensions"]}
        for q in standard + percentile
    }


@pytest.mark.parametrize(
    ("isolation", "db_dimension"),
    [
        (Isolation.DEDICATED, {"DBInstanceIdentifier": "opsconsole-t9dq"}),
        (Isolation.SERVERLESS, {"DBClusterIdentifier": "opsconsole-t9dq"}),
        (Isolation.SHARED, {"DBInstanceIdentifier": settings.BASELINE["shared_db_instance"]}),
    ],
)
def test_dimensions_per_tenant(db, isolation, db_dimension):
    tenant = active_tenant("t9dq", isolation=isolation)
    dims = dims_by_id(tenant)
    function = naming.function_name("t9dq")
    for qid in (
        "fn_invocations",
        "fn_errors",
        "fn_throttles",
        "fn_duration_avg",
        "fn_duration_p95",
        "fn_concurrency",
    ):
        assert dims[qid] == {"FunctionName": function, "Resource": f"{function}:live"}
    for qid in (
        "api_requests",
        "api_4xx",
        "api_5xx",
        "api_latency_avg",
        "api_integration_latency",
        "api_latency_p95",
    ):
        assert dims[qid] == {"ApiId": API_ID, "Stage": "$default"}
    assert dims["db_cpu"] == db_dimension and dims["db_connections"] == db_dimension
    assert ("db_capacity" in dims) == (isolation == Isolation.SERVERLESS)
    assert ("db_free_storage" in dims) == (isolation == Isolation.DEDICATED)


def test_percentiles_are_asked_apart(db):
    tenant = active_tenant("t9split")
    standard, percentile = build_queries(tenant_targets(tenant, list(tenant.resources.all())), 60)
    assert {q["MetricStat"]["Stat"] for q in percentile} == {"p95"}
    assert "p95" not in {q["MetricStat"]["Stat"] for q in standard}
    assert len({q["Id"] for q in standard + percentile}) == len(standard) + len(percentile)


def test_missing_resources_leave_their_metrics_out(db):
    tenant = active_tenant("t9gap")
    TenantResource.objects.filter(tenant=tenant, kind="api").update(status=ResourceStatus.DELETED)
    TenantResource.objects.filter(tenant=tenant, kind="log_group").delete()
    resources = list(tenant.resources.all())
    assert [t.group for t in tenant_targets(tenant, resources)] == ["function", "database"]
    missing = {(m.kind, m.critical) for m in missing_resources(tenant, resources)}
    assert missing == {("api", True), ("log_group", False)}
    # Nothing counts as missing while the tenant is still being built.
    Tenant.objects.filter(pk=tenant.pk).update(status=TenantStatus.PROVISIONING)
    tenant.refresh_from_db()
    assert missing_resources(tenant, resources) == []


@pytest.mark.parametrize(("range_key", "period"), [("1h", 60), ("1d", 300), ("1w", 1800)])
def test_period_per_range_stays_inside_the_datapoint_limits(range_key, period):
    span = RANGES[range_key].seconds
    assert choose_period(span, 15) == period
    for queries in (1, 15, 100, 500):
        chosen = choose_period(span, queries)
        points = math.ceil(span / chosen) + 1
        assert points * queries <= cloudwatch.MAX_DATAPOINTS_PER_CALL
        assert points <= 361


def test_query_batches_hold_at_most_500():
    queries = [{"Id": f"q{i}"} for i in range(1201)]
    batches = cloudwatch.query_batches(queries)
    assert [len(b) for b in batches] == [500, 500, 201]
    with pytest.raises(ValueError):
        cloudwatch.get_metric_data(
            queries=queries[:501], start=datetime.now(UTC), end=datetime.now(UTC)
        )


# --- status rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signals", "status", "words"),
    [
        (Signals("active", invocations=1000, errors=3), HEALTHY, "1,000 invocations"),
        (Signals("active"), HEALTHY, "no traffic"),
        (Signals("active", invocations=1000, errors=60), DEGRADED, "6.0% of invocations failed"),
        (Signals("active", invocations=1000, errors=700), DOWN, "70.0% of invocations failed"),
        (Signals("active", invocations=4, errors=3), HEALTHY, "4 invocations"),  # too few
        (Signals("active", api_requests=100, api_5xx=80), DOWN, "answered 5xx"),
        (Signals("active", throttles=3), DEGRADED, "3 throttled"),
        (Signals("active", alarms_firing=["a-errors"]), DEGRADED, "in ALARM: a-errors"),
        (Signals("active", metrics_error="Throttling"), DEGRADED, "metrics unavailable"),
        (Signals("suspended"), DOWN, "suspended"),
        (Signals("failed", tenant_status_reason="RDS quota"), DOWN, "provisioning failed: RDS"),
        (Signals("provisioning"), HEALTHY, "no traffic"),  # onboarding's verify uses this
        (
            Signals(
                "active",
                missing=["function f", "log_group g"],
                missing_critical=["function f"],
                alarms_firing=["x"],
            ),
            DOWN,
            "missing function f; missing log_group g; in ALARM: x",
        ),
    ],
)
def test_assess(signals, status, words):
    got, reason = assess(signals)
    assert got == status
    assert words in reason


def test_stale_numbers_say_so_without_changing_the_status():
    status, reason = assess(Signals("active", invocations=100, data_note="metrics 300 s old"))
    assert status == HEALTHY and reason.endswith("(metrics 300 s old)")


# --- charts --------------------------------------------------------------------------------


def test_a_missing_period_is_a_gap_not_a_line():
    points = [(0, 1.0), (60, 2.0), (180, 3.0), (240, 1.0), (420, 5.0)]
    assert runs(points, 60) == [[(0, 1.0), (60, 2.0)], [(180, 3.0), (240, 1.0)], [(420, 5.0)]]
    svg = time_chart(
        title="Errors", unit="count", series=[Series("Errors", points)], start=0, end=480, period=60
    )
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 1


def test_chart_units_markers_and_escaping():
    svg = time_chart(
        title="Latency <b>",
        unit="ms",
        series=[Series("p95 & co", [(0, 1500.0), (60, 900.0)])],
        start=0,
        end=3600,
        period=60,
        markers=[Marker(1800, "release <1.5>"), Marker(99999, "outside")],
    )
    assert "Latency &lt;b&gt;" in svg and "p95 &amp; co" in svg
    assert "release &lt;1.5&gt;" in svg and "outside" not in svg
    assert svg.count('class="deploy-marker"') == 1
    assert "2.0 s" in svg  # the axis top (nice ceiling of 1,500 ms)
    assert "900 ms" in svg  # the latest value in the legend


def test_empty_chart_says_so():
    svg = time_chart(
        title="CPU", unit="percent", series=[Series("CPU", [])], start=0, end=60, period=60
    )
    assert "No data in this range" in svg


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (1234, "count", "1.2k"),
        (2.5, "count", "2.5"),
        (87.4, "ms", "87 ms"),
        (2300, "ms", "2.3 s"),
        (45.2, "percent", "45%"),
        (17.5e9, "bytes", "17.5 GB"),
        (1.5, "acu", "1.5 ACU"),
        (None, "count", "—"),
    ],
)
def test_format_value(value, unit, text):
    assert format_value(value, unit) == text

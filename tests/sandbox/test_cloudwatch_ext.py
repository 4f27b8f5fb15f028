"""The local AWS's CloudWatch metrics: percentiles from the stored values in GetMetricData
and GetMetricStatistics, the other statistics as before, per-query failures instead of a
failed call, and queries that stay fast with tens of thousands of datapoints."""

from __future__ import annotations

import math
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest

pytestmark = pytest.mark.integration


def _cloudwatch(endpoint: str, region: str = "us-east-1"):
    return boto3.client(
        "cloudwatch",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def _put(cw, namespace: str, name: str, dims: list[dict], values: list[float], when: datetime):
    # 150 values per datum, 20 datums per call: well inside PutMetricData's limits.
    chunks = [values[i : i + 150] for i in range(0, len(values), 150)]
    for i in range(0, len(chunks), 20):
        cw.put_metric_data(
            Namespace=namespace,
            MetricData=[
                {
                    "MetricName": name,
                    "Dimensions": dims,
                    "Values": chunk,
                    "Timestamp": when,
                    "Unit": "Milliseconds",
                }
                for chunk in chunks[i : i + 20]
            ],
        )


def _query(qid: str, namespace: str, name: str, dims: list[dict], stat: str, period: int = 60):
    return {
        "Id": qid,
        "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": dims},
            "Period": period,
            "Stat": stat,
        },
    }


@pytest.fixture
def metric():
    suffix = uuid.uuid4().hex[:8]
    return f"Test/{suffix}", "Latency", [{"Name": "ApiId", "Value": suffix}]


def test_percentiles_and_standard_statistics_in_one_call(local_aws_server, metric):
    namespace, name, dims = metric
    cw = _cloudwatch(local_aws_server)
    rng = random.Random(7)
    values = [round(rng.expovariate(1 / 40), 3) for _ in range(997)]
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    _put(cw, namespace, name, dims, values, minute + timedelta(seconds=20))
    # A datum of another series (one more dimension) must not leak into this one.
    cw.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [*dims, {"Name": "Stage", "Value": "$default"}],
                "Value": 10_000.0,
                "Timestamp": minute + timedelta(seconds=30),
            }
        ],
    )
    stats = ["p95", "p99.9", "p50", "Average", "Sum", "SampleCount", "Minimum", "Maximum"]
    resp = cw.get_metric_data(
        MetricDataQueries=[
            _query(f"q{i}", namespace, name, dims, stat) for i, stat in enumerate(stats)
        ],
        StartTime=minute - timedelta(minutes=5),
        EndTime=minute + timedelta(minutes=5),
    )
    got = {r["Id"]: r for r in resp["MetricDataResults"]}
    expected = {
        "p95": nearest_rank(values, 95),
        "p99.9": nearest_rank(values, 99.9),
        "p50": nearest_rank(values, 50),
        "Average": sum(values) / len(values),
        "Sum": sum(values),
        "SampleCount": float(len(values)),
        "Minimum": min(values),
        "Maximum": max(values),
    }
    for i, stat in enumerate(stats):
        result = got[f"q{i}"]
        assert result["StatusCode"] == "Complete", stat
        assert result["Timestamps"] == [minute], stat
        assert result["Values"] == [pytest.approx(expected[stat])], stat


def test_get_metric_statistics_extended_statistics(local_aws_server, metric):
    namespace, name, dims = metric
    cw = _cloudwatch(local_aws_server)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    first, second = [float(v) for v in range(1, 101)], [float(v) for v in range(500, 520)]
    _put(cw, namespace, name, dims, first, now - timedelta(minutes=3, seconds=-5))
    _put(cw, namespace, name, dims, second, now - timedelta(minutes=2, seconds=-5))
    resp = cw.get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=dims,
        StartTime=now - timedelta(minutes=10),
        EndTime=now,
        Period=60,
        Statistics=["Sum", "Maximum"],
        ExtendedStatistics=["p90", "p99"],
    )
    points = sorted(resp["Datapoints"], key=lambda p: p["Timestamp"])
    assert [p["Timestamp"] for p in points] == [
        now - timedelta(minutes=3),
        now - timedelta(minutes=2),
    ]
    assert points[0]["Sum"] == sum(first)
    assert points[0]["Maximum"] == 100.0
    assert points[0]["ExtendedStatistics"] == {"p90": 90.0, "p99": 99.0}
    assert points[1]["ExtendedStatistics"] == {
        "p90": nearest_rank(second, 90),
        "p99": nearest_rank(second, 99),
    }
    assert points[0]["Unit"] == "Milliseconds"


def test_statistic_sets_count_for_percentiles_only_when_they_are_one_value(
    local_aws_server, metric
):
    namespace, name, dims = metric
    cw = _cloudwatch(local_aws_server)
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    sets = [
        {"SampleCount": 50, "Sum": 50 * 7.0, "Minimum": 7.0, "Maximum": 7.0},  # one value
        {"SampleCount": 10, "Sum": 100.0, "Minimum": 1.0, "Maximum": 40.0},  # a spread
    ]
    cw.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {"MetricName": name, "Dimensions": dims, "StatisticValues": s, "Timestamp": minute}
            for s in sets
        ],
    )
    resp = cw.get_metric_data(
        MetricDataQueries=[
            _query("p", namespace, name, dims, "p99"),
            _query("n", namespace, name, dims, "SampleCount"),
            _query("m", namespace, name, dims, "Maximum"),
        ],
        StartTime=minute - timedelta(minutes=1),
        EndTime=minute + timedelta(minutes=1),
    )
    got = {r["Id"]: r["Values"] for r in resp["MetricDataResults"]}
    assert got == {"p": [7.0], "n": [60.0], "m": [40.0]}


def test_a_query_the_sandbox_cannot_answer_fails_alone(local_aws_server, metric):
    namespace, name, dims = metric
    cw = _cloudwatch(local_aws_server)
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    _put(cw, namespace, name, dims, [1.0, 2.0, 3.0], minute)
    resp = cw.get_metric_data(
        MetricDataQueries=[
            _query("sum", namespace, name, dims, "Sum"),
            {"Id": "same", "Expression": "sum"},
            {"Id": "math", "Expression": "sum * 2"},
        ],
        StartTime=minute - timedelta(minutes=1),
        EndTime=minute + timedelta(minutes=1),
    )
    got = {r["Id"]: r for r in resp["MetricDataResults"]}
    assert got["sum"]["Values"] == [6.0]
    assert got["same"]["Values"] == [6.0]
    assert got["math"]["StatusCode"] == "InternalError"
    assert "metric math" in got["math"]["Messages"][0]["Value"]


def test_list_metrics_lists_each_series_once(local_aws_server, metric):
    namespace, name, dims = metric
    cw = _cloudwatch(local_aws_server)
    now = datetime.now(UTC)
    _put(cw, namespace, name, dims, [1.0] * 300, now)
    _put(cw, namespace, "Count", dims, [1.0] * 10, now)
    listed = cw.list_metrics(Namespace=namespace)["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == ["Count", "Latency"]


def test_queries_stay_fast_with_tens_of_thousands_of_datapoints(local_aws_server, metric):
    namespace, name, dims = metric
    cw = _cloudwatch(local_aws_server)
    rng = random.Random(3)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    # 60,000 values over the last 2 hours, in 120 minutes, plus noise in other series.
    every = {}
    for minute in range(120):
        values = [rng.uniform(1, 100) for _ in range(500)]
        every[minute] = values
        _put(cw, namespace, name, dims, values, now - timedelta(minutes=120 - minute))
    for other in range(20):
        _put(
            cw,
            namespace,
            name,
            [{"Name": "ApiId", "Value": f"other-{other}"}],
            [1.0] * 500,
            now - timedelta(minutes=5),
        )
    started = time.perf_counter()
    resp = cw.get_metric_data(
        MetricDataQueries=[
            _query("p95", namespace, name, dims, "p95"),
            _query("avg", namespace, name, dims, "Average"),
            _query("n", namespace, name, dims, "SampleCount"),
        ],
        StartTime=now - timedelta(hours=3),
        EndTime=now,
        ScanBy="TimestampAscending",
    )
    elapsed = time.perf_counter() - started
    got = {r["Id"]: r["Values"] for r in resp["MetricDataResults"]}
    assert len(got["p95"]) == 120
    assert got["n"] == [500.0] * 120
    assert got["p95"][0] == nearest_rank(every[0], 95)
    assert got["p95"][-1] == nearest_rank(every[119], 95)
    print(f"get_metric_data over 70,000 datapoints (3 queries, 180 periods): {elapsed:.3f}s")
    assert elapsed < 2.0

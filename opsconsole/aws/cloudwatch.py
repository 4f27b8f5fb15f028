"""CloudWatch alarms and metrics."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from opsconsole.aws.clients import call, client, tag_list


def describe_alarms(*, names: list[str], region: str | None = None) -> dict[str, dict]:
    if not names:
        return {}
    resp = call(client("cloudwatch", region).describe_alarms, AlarmNames=names)
    return {a["AlarmName"]: a for a in resp.get("MetricAlarms", [])}


def put_metric_alarm(*, spec: dict[str, Any], tags: dict[str, str], region: str | None = None):
    call(client("cloudwatch", region).put_metric_alarm, **spec, Tags=tag_list(tags))


def delete_alarms(*, names: list[str], region: str | None = None) -> None:
    if names:
        call(client("cloudwatch", region).delete_alarms, AlarmNames=names)


# --- metrics -------------------------------------------------------------------------------

# GetMetricData limits per call: 500 queries and 100,800 datapoints in all.
MAX_QUERIES_PER_CALL = 500
MAX_DATAPOINTS_PER_CALL = 100_800
# PutMetricData takes up to 1,000 datums and 1 MB per call; 500 keeps well under both.
PUT_DATUMS_PER_CALL = 500


def query_batches(queries: list[dict], size: int = MAX_QUERIES_PER_CALL) -> list[list[dict]]:
    """``queries`` cut into GetMetricData-sized lists, in order."""
    return [queries[i : i + size] for i in range(0, len(queries), size)]


def get_metric_data(
    *, queries: list[dict], start: datetime, end: datetime, region: str | None = None
) -> dict[str, dict[str, Any]]:
    """One GetMetricData request for at most 500 queries (AWS pages the answer only past
    its datapoint limit; callers choose periods that stay inside it).

    Returns ``{query id: {"timestamps": [epoch s], "values": [float], "status": str,
    "messages": [str]}}``, oldest datapoint first.
    """
    if len(queries) > MAX_QUERIES_PER_CALL:
        raise ValueError(f"{len(queries)} queries: GetMetricData takes {MAX_QUERIES_PER_CALL}")
    results: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    while True:
        resp = call(client("cloudwatch", region).get_metric_data, **kwargs)
        for item in resp.get("MetricDataResults", []):
            entry = results.setdefault(
                item["Id"], {"timestamps": [], "values": [], "status": "", "messages": []}
            )
            entry["timestamps"].extend(int(ts.timestamp()) for ts in item.get("Timestamps", []))
            entry["values"].extend(float(v) for v in item.get("Values", []))
            entry["status"] = item.get("StatusCode", "Complete")
            entry["messages"].extend(m.get("Value", "") for m in item.get("Messages", []))
        token = resp.get("NextToken")
        if not token:
            return results
        kwargs["NextToken"] = token


def get_metric_data_batched(
    *,
    queries: list[dict],
    start: datetime,
    end: datetime,
    region: str | None = None,
    workers: int = 1,
) -> tuple[dict[str, dict[str, Any]], int]:
    """Any number of queries in ceil(n / 500) GetMetricData calls, ``workers`` at a time
    (boto3 clients are thread-safe). Returns (results by query id, calls made); the first
    failing call raises."""
    batches = query_batches(queries)
    results: dict[str, dict[str, Any]] = {}

    def one(batch: list[dict]) -> dict[str, dict[str, Any]]:
        return get_metric_data(queries=batch, start=start, end=end, region=region)

    if workers > 1 and len(batches) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(batches))) as pool:
            for part in pool.map(one, batches):
                results.update(part)
    else:
        for batch in batches:
            results.update(one(batch))
    return results, len(batches)


def put_metric_data(*, namespace: str, data: list[dict], region: str | None = None) -> int:
    """Write datums (``MetricName``, ``Dimensions``, ``Timestamp``, ``Value`` or
    ``StatisticValues``, ``Unit``). Returns the number of calls made."""
    calls = 0
    for i in range(0, len(data), PUT_DATUMS_PER_CALL):
        call(
            client("cloudwatch", region).put_metric_data,
            Namespace=namespace,
            MetricData=data[i : i + PUT_DATUMS_PER_CALL],
        )
        calls += 1
    return calls


def describe_alarms_in_state(
    *, prefix: str, state: str = "ALARM", region: str | None = None
) -> list[dict]:
    """Every metric alarm whose name starts with ``prefix`` and is in ``state``: usually a
    handful, so one call covers a whole fleet (100 alarms per page)."""
    alarms: list[dict] = []
    kwargs: dict[str, Any] = {"AlarmNamePrefix": prefix, "StateValue": state, "MaxRecords": 100}
    while True:
        resp = call(client("cloudwatch", region).describe_alarms, **kwargs)
        # Checked here too: moto ignores StateValue when a prefix is given.
        alarms.extend(a for a in resp.get("MetricAlarms", []) if a.get("StateValue") == state)
        token = resp.get("NextToken")
        if not token:
            return alarms
        kwargs["NextToken"] = token


def set_alarm_state(*, name: str, state: str, reason: str, region: str | None = None) -> None:
    call(
        client("cloudwatch", region).set_alarm_state,
        AlarmName=name,
        StateValue=state,
        StateReason=reason,
    )

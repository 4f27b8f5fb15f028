"""What real work leaves behind: CloudWatch metrics and log lines, written straight into
moto's backends (the same state the console reads through the API).

One lock for both: the server is threaded, moto's stores are plain lists and dicts.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from opsconsole.sandbox.localaws.moto_state import backend

_lock = threading.Lock()


def put_metrics(*, region: str, namespace: str, data: list[dict[str, Any]]) -> None:
    """``data`` as PutMetricData's MetricData: MetricName, Dimensions [{Name, Value}],
    Value, Unit, optional Timestamp (a datetime; now when missing)."""
    now = datetime.now(UTC)
    rows = [{**item, "Timestamp": item.get("Timestamp") or now} for item in data]
    with _lock:
        backend("cloudwatch", region).put_metric_data(namespace, rows)


def write_logs(*, region: str, group: str, stream: str, lines: list[tuple[int, str]]) -> None:
    """Append ``(timestamp_ms, message)`` lines to a log stream, creating group and stream
    when missing (Lambda creates its log group on first use when the role may)."""
    if not lines:
        return
    logs = backend("logs", region)
    with _lock:
        logs.ensure_log_group(group)
        streams = logs.groups[group].streams
        if stream not in streams:
            logs.create_log_stream(group, stream)
        logs.put_log_events(group, stream, [{"timestamp": ts, "message": msg} for ts, msg in lines])

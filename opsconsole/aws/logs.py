"""CloudWatch Logs: one log group per tenant function."""

from __future__ import annotations

from collections import deque

from opsconsole.aws.clients import call, client
from opsconsole.aws.errors import AwsError, AwsNotFound


def describe_log_group(*, name: str, region: str | None = None) -> dict | None:
    resp = call(client("logs", region).describe_log_groups, logGroupNamePrefix=name)
    for group in resp.get("logGroups", []):
        if group["logGroupName"] == name:
            return group
    return None


def create_log_group(*, name: str, tags: dict[str, str], region: str | None = None) -> None:
    call(client("logs", region).create_log_group, logGroupName=name, tags=tags)


def put_retention(*, name: str, days: int, region: str | None = None) -> None:
    call(client("logs", region).put_retention_policy, logGroupName=name, retentionInDays=days)


def delete_log_group(*, name: str, region: str | None = None) -> bool:
    try:
        call(client("logs", region).delete_log_group, logGroupName=name)
    except AwsNotFound:
        return False
    return True


def filter_events(
    *, name: str, pattern: str, start_ms: int, limit: int = 20, region: str | None = None
) -> list[dict]:
    try:
        resp = call(
            client("logs", region).filter_log_events,
            logGroupName=name,
            filterPattern=pattern,
            startTime=start_ms,
            limit=limit,
        )
    except AwsNotFound:
        return []
    return resp.get("events", [])


def recent_events(
    *,
    name: str,
    pattern: str,
    start_ms: int,
    end_ms: int,
    keep: int = 20,
    max_pages: int = 5,
    region: str | None = None,
) -> tuple[list[dict], bool]:
    """The newest ``keep`` events matching ``pattern`` between the two times, oldest first.

    FilterLogEvents answers oldest first, so this reads pages and keeps the tail; it stops
    after ``max_pages`` pages (1,000 events each). Returns (events, complete): complete is
    False when it stopped early, so newer matches may exist. A missing group raises
    AwsNotFound.
    """
    tail: deque[dict] = deque(maxlen=keep)
    kwargs: dict = {
        "logGroupName": name,
        "filterPattern": pattern,
        "startTime": start_ms,
        "endTime": end_ms,
        "limit": 1000,
    }
    for _ in range(max_pages):
        resp = call(client("logs", region).filter_log_events, **kwargs)
        tail.extend(resp.get("events", []))
        token = resp.get("nextToken")
        if not token:
            return list(tail), True
        kwargs["nextToken"] = token
    return list(tail), False


def create_log_stream(*, group: str, stream: str, region: str | None = None) -> bool:
    """Create the stream unless it exists; True when it was created."""
    try:
        call(client("logs", region).create_log_stream, logGroupName=group, logStreamName=stream)
    except AwsError as exc:
        if exc.code == "ResourceAlreadyExistsException":
            return False
        raise
    return True


# PutLogEvents: at most 10,000 events and 1 MB per call, in time order.
_EVENTS_PER_CALL = 1000


def put_log_events(
    *, group: str, stream: str, events: list[dict], region: str | None = None
) -> int:
    """Append ``{"timestamp": ms, "message": str}`` events (sorted here). Returns calls made."""
    ordered = sorted(events, key=lambda e: e["timestamp"])
    calls = 0
    for i in range(0, len(ordered), _EVENTS_PER_CALL):
        call(
            client("logs", region).put_log_events,
            logGroupName=group,
            logStreamName=stream,
            logEvents=ordered[i : i + _EVENTS_PER_CALL],
        )
        calls += 1
    return calls

"""CloudWatch Logs: one log group per tenant function."""

from __future__ import annotations

from opsconsole.aws.clients import call, client
from opsconsole.aws.errors import AwsNotFound


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

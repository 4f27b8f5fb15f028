"""CloudWatch alarms and metrics."""

from __future__ import annotations

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

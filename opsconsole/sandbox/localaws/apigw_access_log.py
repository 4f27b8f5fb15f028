"""HTTP API access logs: one line a request in the stage's format, in its log group.

A stage with AccessLogSettings (DestinationArn: a CloudWatch Logs group, Format: text with
``$context.*`` variables) gets a line for every request it answered, preflights and
errors included, as API Gateway writes them. Variables are the ones AWS documents for
HTTP APIs ("Customize HTTP API access logs"); one without a value, or one this sandbox
does not know, is ``-``. Values are escaped for a double-quoted JSON string, so a JSON
format stays JSON. API Gateway does not create the group: a missing group gets nothing.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from opsconsole.sandbox.localaws import telemetry
from opsconsole.sandbox.localaws.moto_state import backend

logger = logging.getLogger(__name__)

_VARIABLE = re.compile(r"\$context\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)")
_GROUP_ARN = re.compile(r"^arn:[^:]+:logs:([a-z0-9-]+):\d{12}:log-group:([^:]+)(?::\*)?$")


@dataclass
class Entry:
    """What API Gateway knows of one request when it has answered it."""

    account_id: str
    api_id: str
    stage: str
    domain_name: str
    domain_prefix: str
    request_id: str
    source_ip: str
    user_agent: str
    epoch_ms: int
    method: str
    path: str
    protocol: str
    route_key: str
    status: int
    response_length: int
    response_latency_ms: float
    integration_latency_ms: float | None = None
    integration_status: int | None = None
    integration_error: str = ""

    def values(self) -> dict[str, Any]:
        return {
            "accountId": self.account_id,
            "apiId": self.api_id,
            "domainName": self.domain_name,
            "domainPrefix": self.domain_prefix,
            "extendedRequestId": self.request_id,
            "httpMethod": self.method,
            "identity.sourceIp": self.source_ip,
            "identity.userAgent": self.user_agent,
            "integrationErrorMessage": self.integration_error,
            "integration.error": self.integration_error,
            "integrationLatency": _ms(self.integration_latency_ms),
            "integration.latency": _ms(self.integration_latency_ms),
            "integrationStatus": self.integration_status,
            "integration.integrationStatus": self.integration_status,
            "path": self.path,
            "protocol": self.protocol,
            "requestId": self.request_id,
            "requestTime": time.strftime(
                "%d/%b/%Y:%H:%M:%S +0000", time.gmtime(self.epoch_ms / 1000)
            ),
            "requestTimeEpoch": self.epoch_ms,
            "responseLatency": _ms(self.response_latency_ms),
            "responseLength": self.response_length,
            "routeKey": self.route_key,
            "stage": self.stage,
            "status": self.status,
        }


def _ms(value: float | None) -> int | None:
    return None if value is None else round(value)


def render(fmt: str, entry: Entry) -> str:
    values = entry.values()

    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if value is None or value == "":
            return "-"
        return json.dumps(str(value))[1:-1]

    return _VARIABLE.sub(one, fmt)


def write(stage: Any, region: str, entry: Entry) -> None:
    """Append the entry's line to the stage's access log group, if it logs."""
    settings = getattr(stage, "access_log_settings", None) or {}
    arn, fmt = settings.get("destinationArn"), settings.get("format")
    match = _GROUP_ARN.match(arn or "")
    if not match or not fmt:
        return
    group_region, group = match.group(1) or region, match.group(2)
    try:
        if group not in backend("logs", group_region).groups:
            return
        telemetry.write_logs(
            region=group_region,
            group=group,
            stream=f"{entry.api_id}_{entry.stage}",
            lines=[(entry.epoch_ms, render(fmt, entry))],
        )
    except Exception:  # noqa: BLE001 - an access log must never fail a request
        logger.exception("writing the access log of API %s failed", entry.api_id)

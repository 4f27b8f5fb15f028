"""What an invoke leaves in CloudWatch, as Lambda leaves it: the log lines (the process's
output between START and END, then REPORT; INIT_REPORT and platform errors) and the
AWS/Lambda metrics by FunctionName, FunctionName + Resource for a qualified invoke, and
FunctionName + Resource + ExecutedVersion for an alias invoke."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from opsconsole.sandbox.localaws import telemetry
from opsconsole.sandbox.localaws.lambda_environment import FunctionVersion, RunOutcome

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resource:
    """What an invoke's metrics are about."""

    region: str
    function: str
    qualifier: str | None  # as invoked
    alias: str | None
    executed_version: str


def log_lines(outcome: RunOutcome, spec: FunctionVersion) -> list[tuple[int, str]]:
    now = int(time.time() * 1000)
    start = now - int(outcome.duration_ms)
    request_id = outcome.request_id
    lines = list(outcome.pre_lines)
    if outcome.kind == "init_error" and outcome.init_ms is not None:
        lines.append(
            (
                start,
                f"INIT_REPORT Init Duration: {outcome.init_ms:.2f} ms\tPhase: init\t"
                f"Status: error\tError Type: {outcome.error_type}",
            )
        )
    lines.append((start, f"START RequestId: {request_id} Version: {spec.version}"))
    lines += outcome.lines
    if outcome.kind == "exit":
        message = json.loads(outcome.payload)["errorMessage"]
        lines.append((now, f"{message}\nRuntime.ExitError"))
    elif outcome.kind == "cannot_run":
        message = json.loads(outcome.payload)["errorMessage"]
        lines.append((now, f"RequestId: {request_id} Error: {message}\n{outcome.error_type}"))
    lines.append((now, f"END RequestId: {request_id}"))
    fields = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {outcome.duration_ms:.2f} ms",
        f"Billed Duration: {max(1, math.ceil(outcome.duration_ms))} ms",
        f"Memory Size: {spec.memory_mb} MB",
        f"Max Memory Used: {max(1, outcome.max_memory_mb)} MB",
    ]
    if outcome.init_ms is not None:
        fields.append(f"Init Duration: {outcome.init_ms:.2f} ms")
    if outcome.kind == "timeout":
        fields.append("Status: timeout")
    elif outcome.kind not in ("ok", "function_error"):
        fields += ["Status: error", f"Error Type: {outcome.error_type}"]
    lines.append((now, "\t".join(fields) + "\t"))
    if outcome.kind == "timeout":
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        lines.append(
            (now, f"{stamp} {request_id} Task timed out after {spec.timeout_s:.2f} seconds")
        )
    # PutLogEvents wants chronological order.
    ordered, last = [], 0
    for ts, message in lines:
        last = max(last, ts)
        ordered.append((last, message))
    return ordered


def _dimension_sets(target: Resource) -> list[list[dict[str, str]]]:
    name = [{"Name": "FunctionName", "Value": target.function}]
    sets = [name]
    if target.qualifier:
        resource = [*name, {"Name": "Resource", "Value": f"{target.function}:{target.qualifier}"}]
        sets.append(resource)
        if target.alias:
            sets.append([*resource, {"Name": "ExecutedVersion", "Value": target.executed_version}])
    return sets


def put_metrics(
    target: Resource,
    values: list[tuple[str, float, str]],
    *,
    concurrency: tuple[int, int] | None = None,
) -> None:
    now = datetime.now(UTC)
    data = [
        {"MetricName": metric, "Dimensions": dims, "Value": value, "Unit": unit, "Timestamp": now}
        for dims in _dimension_sets(target)
        for metric, value, unit in values
    ]
    if concurrency is not None:
        account, function = concurrency
        # As Lambda reports it: for the account, and for the function, version and alias
        # (here the function's count stands for its versions' and aliases').
        per_function = [(dims, function) for dims in _dimension_sets(target)]
        for dims, value in [([], account), *per_function]:
            data.append(
                {
                    "MetricName": "ConcurrentExecutions",
                    "Dimensions": dims,
                    "Value": float(value),
                    "Unit": "Count",
                    "Timestamp": now,
                }
            )
    try:
        telemetry.put_metrics(region=target.region, namespace="AWS/Lambda", data=data)
    except Exception:  # noqa: BLE001
        logger.exception("could not write AWS/Lambda metrics for %s", target.function)

"""Lambda: tenant functions, their versions, the `live` alias, concurrency, invoke.

Every control-plane call here counts against Lambda's 15 requests/s per account and region;
rollouts put their own rate budget in front of these.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from botocore.exceptions import ReadTimeoutError, WaiterError

from opsconsole.aws.clients import call, client
from opsconsole.aws.errors import AwsError, AwsNotFound, translate


def get_function(*, name: str, region: str | None = None) -> dict | None:
    """GetFunction (100 requests/s, unlike GetFunctionConfiguration's shared 15/s)."""
    try:
        return call(client("lambda", region).get_function, FunctionName=name)
    except AwsNotFound:
        return None


def create_function(*, spec: dict[str, Any], region: str | None = None) -> dict:
    return call(client("lambda", region).create_function, **spec)


def update_configuration(*, name: str, changes: dict[str, Any], region: str | None = None):
    return call(
        client("lambda", region).update_function_configuration, FunctionName=name, **changes
    )


def update_code(
    *,
    name: str,
    code: dict[str, Any],
    publish: bool = False,
    revision_id: str = "",
    region: str | None = None,
) -> dict:
    """UpdateFunctionCode. With ``publish`` the answer is the version published from this
    code (one call instead of two); with ``revision_id`` AWS refuses the update
    (PreconditionFailedException) if the function changed since that revision was read."""
    kwargs: dict[str, Any] = {"FunctionName": name, **code}
    if publish:
        kwargs["Publish"] = True
    if revision_id:
        kwargs["RevisionId"] = revision_id
    return call(client("lambda", region).update_function_code, **kwargs)


def _wait(waiter_name: str, name: str, region: str | None, max_attempts: int) -> None:
    waiter = client("lambda", region).get_waiter(waiter_name)
    try:
        waiter.wait(FunctionName=name, WaiterConfig={"Delay": 2, "MaxAttempts": max_attempts})
    except WaiterError as exc:
        last = exc.last_response or {}
        reason = last.get("Configuration", {}).get("StateReason") or last.get(
            "Configuration", {}
        ).get("LastUpdateStatusReason")
        raise AwsError(
            f"{name} did not become ready: {reason or exc}",
            code="FunctionNotReady",
            operation=waiter_name,
            permanent=bool(reason),
        ) from exc


def wait_active(*, name: str, region: str | None = None, max_attempts: int = 60) -> None:
    _wait("function_active_v2", name, region, max_attempts)


def wait_updated(*, name: str, region: str | None = None, max_attempts: int = 60) -> None:
    _wait("function_updated_v2", name, region, max_attempts)


def publish_version(
    *, name: str, code_sha256: str | None = None, description: str = "", region: str | None = None
) -> dict:
    kwargs: dict[str, Any] = {"FunctionName": name, "Description": description}
    if code_sha256:
        # AWS refuses to publish if the code changed under us since we checked it.
        kwargs["CodeSha256"] = code_sha256
    return call(client("lambda", region).publish_version, **kwargs)


def list_versions(*, name: str, region: str | None = None) -> list[dict]:
    resp = call(client("lambda", region).list_versions_by_function, FunctionName=name)
    return resp.get("Versions", [])


def get_alias(*, function: str, alias: str, region: str | None = None) -> dict | None:
    try:
        return call(client("lambda", region).get_alias, FunctionName=function, Name=alias)
    except AwsNotFound:
        return None


def create_alias(*, function: str, alias: str, version: str, region: str | None = None):
    return call(
        client("lambda", region).create_alias,
        FunctionName=function,
        Name=alias,
        FunctionVersion=version,
    )


def update_alias(
    *,
    function: str,
    alias: str,
    version: str,
    weights: dict[str, float] | None = None,
    region: str | None = None,
) -> dict:
    return call(
        client("lambda", region).update_alias,
        FunctionName=function,
        Name=alias,
        FunctionVersion=version,
        RoutingConfig={"AdditionalVersionWeights": weights or {}},
    )


def get_policy_statements(*, function: str, qualifier: str, region: str | None = None):
    try:
        resp = call(client("lambda", region).get_policy, FunctionName=function, Qualifier=qualifier)
    except AwsNotFound:
        return []
    return json.loads(resp["Policy"]).get("Statement", [])


def add_permission(
    *,
    function: str,
    qualifier: str,
    statement_id: str,
    principal: str,
    source_arn: str,
    region: str | None = None,
) -> None:
    call(
        client("lambda", region).add_permission,
        FunctionName=function,
        Qualifier=qualifier,
        StatementId=statement_id,
        Action="lambda:InvokeFunction",
        Principal=principal,
        SourceArn=source_arn,
    )


def remove_permission(
    *, function: str, qualifier: str, statement_id: str, region: str | None = None
) -> None:
    with contextlib.suppress(AwsNotFound):
        call(
            client("lambda", region).remove_permission,
            FunctionName=function,
            Qualifier=qualifier,
            StatementId=statement_id,
        )


def put_concurrency(*, name: str, reserved: int, region: str | None = None) -> None:
    call(
        client("lambda", region).put_function_concurrency,
        FunctionName=name,
        ReservedConcurrentExecutions=reserved,
    )


def delete_concurrency(*, name: str, region: str | None = None) -> None:
    call(client("lambda", region).delete_function_concurrency, FunctionName=name)


def get_concurrency(*, name: str, region: str | None = None) -> int | None:
    resp = call(client("lambda", region).get_function_concurrency, FunctionName=name)
    return resp.get("ReservedConcurrentExecutions")


def invoke(
    *, name: str, qualifier: str, payload: dict, region: str | None = None
) -> tuple[int, dict | str, str]:
    """Invoke synchronously. Returns (status code, decoded payload, function error)."""
    resp = call(
        client("lambda", region).invoke,
        FunctionName=name,
        Qualifier=qualifier,
        Payload=json.dumps(payload).encode(),
    )
    body = resp["Payload"].read().decode("utf-8", "replace")
    try:
        decoded: dict | str = json.loads(body) if body else {}
    except json.JSONDecodeError:
        decoded = body
    return resp.get("StatusCode", 0), decoded, resp.get("FunctionError", "")


def invoke_within(
    *, name: str, qualifier: str, payload: dict, timeout_s: float, region: str | None = None
) -> tuple[int, str, str]:
    """Invoke synchronously, waiting at most ``timeout_s`` for the answer, in one attempt.

    Returns (status code, the function's answer as text, function error). No answer in
    time raises AwsError with code ``InvokeTimeout``. Invoke is Lambda's data plane: it
    does not count against the 15 requests/s of the control plane.
    """
    try:
        resp = client("lambda", region, read_timeout_s=timeout_s).invoke(
            FunctionName=name, Qualifier=qualifier, Payload=json.dumps(payload).encode()
        )
        body = resp["Payload"].read().decode("utf-8", "replace")
    except ReadTimeoutError as exc:
        raise AwsError(
            f"no answer within {timeout_s:g} s",
            code="InvokeTimeout",
            operation="Invoke",
            permanent=False,
        ) from exc
    except Exception as exc:  # noqa: BLE001 - translate() re-raises what it does not know
        raise translate(exc) from exc
    return resp.get("StatusCode", 0), body, resp.get("FunctionError", "")


def delete_function(*, name: str, region: str | None = None) -> bool:
    try:
        call(client("lambda", region).delete_function, FunctionName=name)
    except AwsNotFound:
        return False
    return True


def get_function_at(*, name: str, qualifier: str, region: str | None = None) -> dict | None:
    """GetFunction of a version or alias: its Configuration.Version is what the alias
    serves. On GetFunction's 100 requests/s, not the shared 15/s control plane."""
    try:
        return call(client("lambda", region).get_function, FunctionName=name, Qualifier=qualifier)
    except AwsNotFound:
        return None

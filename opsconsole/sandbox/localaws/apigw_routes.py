"""Which route of an HTTP API a request takes, and whether API Gateway may invoke its
function: route selection as HTTP APIs do it, and the Lambda resource-policy check.

Routes: exact ``METHOD /path`` routes (path variables ``{id}`` match one segment, literal
segments before variables), then greedy ``{proxy+}`` routes (the longer prefix first), a
method of its own before ``ANY``, and ``$default`` last. The table per API is compiled once
per generation of the apigatewayv2 backend (``apigw_proxy`` bumps it on every change).

Permission: moto keeps the statements of ``AddPermission`` (one policy object shared by a
function's versions; an alias's statements carry the alias in their Resource). A statement
applies when it allows ``lambda:InvokeFunction`` to ``apigateway.amazonaws.com`` on the
invoked qualifier, and its ``AWS:SourceArn`` pattern (ArnLike: ``*`` spans ``/``) and
``AWS:SourceAccount`` match.
"""

from __future__ import annotations

import re
import threading
from fnmatch import fnmatchcase
from typing import Any

from moto.awslambda.utils import get_backend as lambda_backend

from opsconsole.sandbox.localaws.apigw_events import Match
from opsconsole.sandbox.localaws.moto_state import ACCOUNT_ID

_INVOCATIONS_URI = re.compile(
    r"^arn:[^:]+:apigateway:[^:]+:lambda:path/[^/]+/functions/(.+)/invocations$"
)
_LAMBDA_ARN = re.compile(r"^arn:[^:]+:lambda:([a-z0-9-]+):\d{12}:function:([^:]+)(?::([^:]+))?$")
_lock = threading.Lock()
_routes: dict[str, tuple[int, list, Any]] = {}


# --- routes -------------------------------------------------------------------------------


def _compiled_routes(api: Any, generation: int) -> list[tuple[tuple, str, str, list[str], Any]]:
    """(rank, method, route key, path segments, route), best first."""
    cached = _routes.get(api.api_id)
    if cached and cached[0] == generation and cached[2] is api:
        return cached[1]
    table = []
    for route in list(api.routes.values()):
        key = route.route_key or ""
        if key == "$default":
            table.append(((2,), "ANY", key, [], route))
            continue
        method, _, path = key.partition(" ")
        segments = [s for s in path.split("/") if s]
        greedy = bool(segments) and segments[-1].endswith("+}")
        # A route without a greedy variable beats one with it (of those, the longer),
        # literal segments beat variables, a method of its own beats ANY.
        kinds = tuple(1 if s.startswith("{") and s.endswith("}") else 0 for s in segments)
        rank = (1 if greedy else 0, -len(segments) if greedy else 0, kinds, method == "ANY")
        table.append((rank, method, key, segments, route))
    table.sort(key=lambda row: row[0])
    with _lock:
        _routes[api.api_id] = (generation, table, api)
    return table


def select_route(api: Any, method: str, path: str, generation: int) -> tuple[Any, Match] | None:
    parts = [s for s in path.split("/") if s]
    for _, route_method, key, segments, route in _compiled_routes(api, generation):
        if route_method not in ("ANY", method):
            continue
        if key == "$default":
            return route, Match(key, {})
        params = _match(segments, parts)
        if params is not None:
            return route, Match(key, params)
    return None


def _match(segments: list[str], parts: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for i, segment in enumerate(segments):
        variable = segment.startswith("{") and segment.endswith("}")
        if variable and segment.endswith("+}"):
            if i != len(segments) - 1 or len(parts) <= i:
                return None
            params[segment[1:-2]] = "/".join(parts[i:])
            return params
        if i >= len(parts):
            return None
        if variable:
            params[segment[1:-1]] = parts[i]
        elif segment != parts[i]:
            return None
    return params if len(parts) == len(segments) else None


# --- permission ---------------------------------------------------------------------------


def function_target(uri: str) -> tuple[str | None, str, str | None] | None:
    """(region, function name, qualifier) of a Lambda integration URI."""
    match = _INVOCATIONS_URI.match(uri or "")
    arn = match.group(1) if match else uri
    found = _LAMBDA_ARN.match(arn or "")
    if found:
        return found.group(1), found.group(2), found.group(3)
    return None


def permitted(region: str, name: str, qualifier: str | None, source_arn: str) -> bool:
    """Does the function's resource policy let API Gateway invoke it from ``source_arn``?"""
    try:
        functions = lambda_backend(ACCOUNT_ID, region)._lambdas._functions[name]
    except (KeyError, AttributeError):
        return True  # no such function: Invoke answers 404 and that becomes the 500
    policies = {id(f.policy): f.policy for f in [functions["latest"], *functions["versions"]]}
    wanted = qualifier if qualifier and qualifier != "$LATEST" else None
    for policy in policies.values():
        for statement in list(policy.statements):
            if _allows(statement, name, wanted, source_arn):
                return True
    return False


def _allows(statement: dict, name: str, qualifier: str | None, source_arn: str) -> bool:
    if statement.get("Effect", "Allow") != "Allow":
        return False
    if statement.get("Action") not in ("lambda:InvokeFunction", "lambda:*", "*"):
        return False
    principal = statement.get("Principal")
    service = principal.get("Service") if isinstance(principal, dict) else principal
    if service not in ("apigateway.amazonaws.com", "*"):
        return False
    resource = str(statement.get("Resource", ""))
    if resource != "*":
        tail = resource.split(f":function:{name}", 1)
        if len(tail) != 2 or (tail[1].lstrip(":") or None) != qualifier:
            return False
    condition = statement.get("Condition") or {}
    for operator in ("ArnLike", "ArnEquals", "StringLike", "StringEquals"):
        for key, pattern in (condition.get(operator) or {}).items():
            if key.lower() == "aws:sourcearn":
                patterns = pattern if isinstance(pattern, list) else [pattern]
                like = operator.endswith("Like")
                if not any(
                    fnmatchcase(source_arn, p) if like else source_arn == p for p in patterns
                ):
                    return False
            if key.lower() == "aws:sourceaccount" and str(pattern) != ACCOUNT_ID:
                return False
    return True

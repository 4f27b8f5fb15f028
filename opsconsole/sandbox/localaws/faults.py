"""Faults on request, for drills: the local AWS answers as AWS does on a bad day.

``POST /_localaws/faults`` with a JSON body arms them until ``seconds`` have passed:

- ``error_rate``: that share of the calls to ``services`` (signing names: ``lambda``,
  ``apigateway``, ``secretsmanager``, ``logs``, ``iam``) answers a throttle or a 5xx in
  the service's own protocol, half each (``ThrottlingException`` /
  ``TooManyRequestsException`` / ``Throttling``; 500 or 503);
- ``not_found_after_create_s``: eventual consistency. For that long after a function is
  created, calls naming it answer ``ResourceNotFoundException``; after a role is created,
  ``CreateFunction`` with it answers "The role defined for the function cannot be assumed
  by Lambda", as IAM's propagation delay makes it do.

Only the console's calls are hit: calls carrying the session token function code gets
(the tenant app's own calls) pass unless ``include_functions`` is set.

``GET`` reports what is armed and what was injected; ``DELETE`` disarms. Nothing here
runs unless a drill asks: the console cannot tell these answers from AWS's.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field

from werkzeug.wrappers import Request, Response

PATH = "/_localaws/faults"
DEFAULT_SERVICES = ("lambda", "apigateway", "secretsmanager", "logs", "iam")
_SIGNED = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
# The session token the local AWS gives function code (lambda_environment.py; the console
# signs with the same key but no token): those calls are the tenant app's, left alone
# unless a drill asks for them (``include_functions``).
FUNCTION_TOKEN = "sandbox-session-token"  # noqa: S105 - the sandbox's fixed stand-in
_FUNCTION = re.compile(r"^/20\d\d-\d\d-\d\d/functions/([^/?]+)")


@dataclass
class _Armed:
    until: float = 0.0
    error_rate: float = 0.0
    services: tuple[str, ...] = DEFAULT_SERVICES
    not_found_after_create_s: float = 0.0
    include_functions: bool = False
    injected: dict[str, int] = field(default_factory=dict)
    created_functions: dict[str, float] = field(default_factory=dict)
    created_roles: dict[str, float] = field(default_factory=dict)


_state = _Armed()
_lock = threading.Lock()
_random = random.Random()


def install(config) -> None:  # noqa: ARG001 - nothing to patch; armed per request
    return None


def route(request: Request) -> Response | None:
    if request.path == PATH:
        return _control(request)
    now = time.monotonic()
    if now >= _state.until:
        return None
    service = _service(request)
    if service is None:
        return None
    if _state.not_found_after_create_s:
        answer = _eventual_consistency(request, service, now)
        if answer is not None:
            return answer
    if service in _state.services and _random.random() < _state.error_rate:
        return _error(service, throttle=_random.random() < 0.5)
    return None


def _control(request: Request) -> Response:
    global _state
    with _lock:
        if request.method == "POST":
            body = json.loads(request.get_data() or b"{}")
            _state = _Armed(
                until=time.monotonic() + float(body.get("seconds", 60)),
                error_rate=float(body.get("error_rate", 0)),
                services=tuple(body.get("services") or DEFAULT_SERVICES),
                not_found_after_create_s=float(body.get("not_found_after_create_s", 0)),
                include_functions=bool(body.get("include_functions", False)),
            )
        elif request.method == "DELETE":
            _state.until = 0.0
        report = asdict(_state)
        report["armed"] = time.monotonic() < _state.until
        report["until"] = max(0.0, _state.until - time.monotonic())
        report.pop("created_functions")
        report.pop("created_roles")
    return Response(json.dumps(report), content_type="application/json")


def _service(request: Request) -> str | None:
    """The signing name of the call, or None for calls the faults leave alone."""
    found = _SIGNED.search(request.headers.get("Authorization", ""))
    if not found:
        return None
    from_function = request.headers.get("X-Amz-Security-Token") == FUNCTION_TOKEN
    if from_function and not _state.include_functions:
        return None
    return found.group(1)


def _count(name: str) -> None:
    with _lock:
        _state.injected[name] = _state.injected.get(name, 0) + 1


def _eventual_consistency(request: Request, service: str, now: float) -> Response | None:
    window = _state.not_found_after_create_s
    if service == "iam" and request.method == "POST":
        # The raw body, not request.form: parsing the form would use up the stream moto
        # still has to read.
        form = urllib.parse.parse_qs(request.get_data(cache=True).decode())
        if form.get("Action") == ["CreateRole"] and form.get("RoleName"):
            _state.created_roles.setdefault(form["RoleName"][0], now)
        return None
    if service != "lambda":
        return None
    found = _FUNCTION.match(request.path)
    if request.method == "POST" and request.path.rstrip("/").endswith("/functions"):
        body = json.loads(request.get_data() or b"{}")
        role = str(body.get("Role", "")).rsplit("/", 1)[-1]
        if now - _state.created_roles.get(role, -1e9) < window:
            _count("role-not-assumable")
            return _rest_json(
                400,
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda.",
            )
        if body.get("FunctionName"):
            # The first create starts the window; a repeated one (which Lambda refuses:
            # it exists) does not restart it.
            _state.created_functions.setdefault(str(body["FunctionName"]), now)
        return None
    if found and now - _state.created_functions.get(found.group(1), -1e9) < window:
        _count("not-found-after-create")
        return _rest_json(404, "ResourceNotFoundException", f"Function not found: {found.group(1)}")
    return None


def _error(service: str, *, throttle: bool) -> Response:
    _count(f"{service}-{'throttle' if throttle else '5xx'}")
    if service in ("lambda", "apigateway"):
        if throttle:
            return _rest_json(429, "TooManyRequestsException", "Rate exceeded")
        return _rest_json(500, "ServiceException", "We encountered an internal error.")
    if service == "iam":
        code, status = ("Throttling", 400) if throttle else ("ServiceFailure", 500)
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{code}</Code><Message>Rate exceeded</Message></Error>"
            "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        )
        return Response(
            body.replace("Rate exceeded", _message(throttle)),
            status=status,
            content_type="text/xml",
        )
    # JSON 1.1 services (Secrets Manager, CloudWatch Logs).
    code, status = ("ThrottlingException", 400) if throttle else ("InternalServiceError", 500)
    return Response(
        json.dumps({"__type": code, "message": _message(throttle)}),
        status=status,
        content_type="application/x-amz-json-1.1",
    )


def _rest_json(status: int, code: str, message: str) -> Response:
    return Response(
        json.dumps({"Type": "User", "message": message, "Message": message}),
        status=status,
        headers={"x-amzn-ErrorType": code},
        content_type="application/json",
    )


def _message(throttle: bool) -> str:
    return "Rate exceeded" if throttle else "An internal error occurred; try again."

"""The health check: the app's own HTTP route, sent the way API Gateway would send it.

A release declares the request (method and path), the statuses that count as healthy and a
timeout (``tenants.release_source.HealthCheck``). ``health_event`` builds the event the
tenant's HTTP API integration would send a Lambda function for that request, in the
integration's payload format (1.0 or 2.0); ``judge`` reads the function's answer as API
Gateway reads it; ``check`` invokes one qualifier with it: the version a deployment just
published, before the alias moves to it, or the ``live`` alias when onboarding verifies.

There is no private event and no special answer: an app passes if its route answers, as
it would for a client of its API (docs/app-contract.md). Invoke is Lambda's data plane, so
the check takes no token of the control-plane budget.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from opsconsole.aws import lambda_
from opsconsole.aws.errors import AwsError
from tenants import naming, resources
from tenants.app_settings import ApiShape as AppApiShape
from tenants.models import Tenant
from tenants.provisioning import api as tenant_api
from tenants.provisioning.common import account_id
from tenants.release_source import HealthCheck

PAYLOAD_FORMATS = ("1.0", "2.0")
DEFAULT_PAYLOAD_FORMAT = "2.0"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
USER_AGENT = "opsconsole-health-check"
# The check does not come over the network: there is no client address to report.
SOURCE_IP = "127.0.0.1"
# An HTTP API gives up on its integration after 30 s at most: a longer check would pass
# a route no client could ever reach.
MAX_TIMEOUT_S = 30
BODY_EXCERPT = 300
# What a path may hold: RFC 3986 path and query characters (percent escapes included).
_PATH_RE = re.compile(r"^/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*(\?[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*)?\Z")


# --- the declaration -------------------------------------------------------------------


def parse_statuses(text: str) -> tuple[tuple[int, int], ...]:
    """``"200-299,301"`` -> ((200, 299), (301, 301)). Raises ValueError saying what is wrong."""
    ranges = []
    items = [item.strip() for item in str(text).split(",")]
    if not any(items):
        raise ValueError("name at least one status or range, e.g. 200-299")
    for item in items:
        if not item:
            raise ValueError("an empty item between two commas")
        low, dash, high = (part.strip() for part in item.partition("-"))
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"{item!r} is neither a status (200) nor a range (200-299)")
        first, last = int(low), int(high) if dash else int(low)
        if not (100 <= first <= 599 and 100 <= last <= 599):
            raise ValueError(f"{item}: HTTP statuses run from 100 to 599")
        if first > last:
            raise ValueError(f"{item}: the range runs backwards")
        ranges.append((first, last))
    return tuple(ranges)


def normalize_statuses(value: Any) -> str:
    """The declaration as stored: a list (``[200, "300-399"]``) or text, without spaces."""
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    text = ",".join(item.strip() for item in str(value).split(","))
    parse_statuses(text)
    return text


def accepts(statuses: str, status: int) -> bool:
    return any(first <= status <= last for first, last in parse_statuses(statuses))


def problems(
    *, method: str, path: str, statuses: Any, timeout_s: Any, function_timeout_s: int
) -> dict[str, str]:
    """What is wrong with a health check declaration, by field (empty when nothing is)."""
    found: dict[str, str] = {}
    if str(method).upper() not in METHODS:
        found["health_method"] = f"one of {', '.join(METHODS)}"
    if not isinstance(path, str) or not path.startswith("/"):
        found["health_path"] = "a path that starts with /, e.g. /healthz"
    elif len(path) > 255 or not _PATH_RE.match(path):
        found["health_path"] = (
            "up to 255 characters of a URL path (and query), spaces and # percent-encoded"
        )
    try:
        normalize_statuses(statuses)
    except ValueError as exc:
        found["health_statuses"] = str(exc)
    try:
        seconds = int(timeout_s)
        if str(timeout_s).strip() != str(seconds):
            raise ValueError
    except (TypeError, ValueError):
        found["health_timeout_s"] = "a whole number of seconds"
    else:
        ceiling = min(MAX_TIMEOUT_S, int(function_timeout_s))
        if not 1 <= seconds <= ceiling:
            found["health_timeout_s"] = (
                f"between 1 and {ceiling} s (the function's timeout, and an HTTP API waits "
                f"{MAX_TIMEOUT_S} s at most)"
            )
    return found


# --- the event -------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiShape:
    """What an event takes from the tenant's HTTP API."""

    payload_format: str = DEFAULT_PAYLOAD_FORMAT
    api_id: str = ""
    domain: str = ""
    account_id: str = ""
    stage: str = tenant_api.STAGE
    route_key: str = tenant_api.ROUTE
    # What the stage puts before the route's path in the path the function is told about
    # ("/production" for a named stage on the API's own endpoint; nothing on $default or
    # behind a custom domain, whose mapping stands for the stage).
    path_prefix: str = ""


def api_shape(tenant: Tenant) -> ApiShape:
    """The tenant's API as its release and overrides declare it (``tenant_api_shape``):
    the deployment that brings a release applies that shape as its alias moves
    (``deployments.release_settings``), so the check sends the new code what the API will
    send it, and a roll back's check sends the old code what it will get back. Without a
    release to read, the API as the API step recorded it (``details``: the integration's
    ``payload_format_version`` and the ``stage``). The host is the custom domain, else
    execute-api; the console gives every API one ``$default`` route
    (tenants.provisioning.api)."""
    record = resources.find(tenant, kind="api")
    details = (record.details if record else None) or {}
    declared = None
    if tenant.desired_release or tenant.current_release:
        try:
            declared = tenant_api.tenant_api_shape(tenant)
        except (LookupError, RuntimeError, ValueError):
            declared = None  # the release is gone: what the API has
    if declared is not None:
        payload_format, stage = declared.payload_format, declared.stage
    else:
        fallback = AppApiShape()
        payload_format = details.get("payload_format_version") or fallback.payload_format
        stage = details.get("stage") or fallback.stage
    payload_format = str(payload_format)
    if payload_format not in PAYLOAD_FORMATS:
        payload_format = DEFAULT_PAYLOAD_FORMAT
    api_id = record.identifier if record else ""
    domain = tenant.custom_domain or (
        f"{api_id}.execute-api.{tenant.region}.amazonaws.com" if api_id else ""
    )
    # On the API's own endpoint a named stage is the path's first segment, and API
    # Gateway leaves it in rawPath, requestContext.http.path (2.0) and path (1.0).
    prefix = "" if tenant.custom_domain or stage == tenant_api.STAGE else f"/{stage}"
    return ApiShape(
        payload_format=payload_format,
        api_id=api_id,
        domain=domain,
        account_id=account_id(tenant.region),
        stage=stage,
        path_prefix=prefix,
    )


def _request_id() -> str:
    # API Gateway's request ids look like "H6SdPgXtiYcEP1w=".
    return base64.b64encode(os.urandom(11)).decode()


def _trace_id(epoch_s: int) -> str:
    return f"Root=1-{epoch_s:08x}-{os.urandom(12).hex()}"


def _route_resource(route_key: str, path: str) -> tuple[str, dict[str, str] | None]:
    """(resource, pathParameters) of the route the request takes: ``$default`` is its own
    resource; ``ANY /{proxy+}`` hands the rest of the path over as ``proxy``."""
    if route_key == "$default":
        return "$default", None
    resource = route_key.split(" ", 1)[-1]
    if resource.endswith("/{proxy+}"):
        prefix = resource[: -len("{proxy+}")]
        return resource, {"proxy": path[len(prefix) :]}
    return resource, None


def health_event(
    check: HealthCheck, shape: ApiShape, *, now: float | None = None
) -> dict[str, Any]:
    """The event API Gateway would send the function for the check's request."""
    now = time.time() if now is None else now
    epoch_ms = int(now * 1000)
    when = datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    method = check.method.upper()
    parts = urlsplit(check.path)
    route_path, query = parts.path or "/", parts.query
    path = shape.path_prefix + route_path
    pairs = parse_qsl(query, keep_blank_values=True)
    request_id = _request_id()
    domain_prefix = shape.domain.split(".", 1)[0]
    headers = {
        "accept": "*/*",
        "host": shape.domain,
        "user-agent": USER_AGENT,
        "x-amzn-trace-id": _trace_id(int(now)),
        "x-forwarded-for": SOURCE_IP,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    resource, path_parameters = _route_resource(shape.route_key, route_path)
    if shape.payload_format == "1.0":
        multi: dict[str, list[str]] = {}
        for key, value in pairs:
            multi.setdefault(key, []).append(value)
        # Format 1.0 keeps header names as the client wrote them (curl's capitals).
        cased = {"-".join(w.capitalize() for w in k.split("-")): v for k, v in headers.items()}
        cased["accept"] = cased.pop("Accept")
        return {
            "version": "1.0",
            "resource": resource,
            "path": path,
            "httpMethod": method,
            "headers": cased,
            "multiValueHeaders": {k: [v] for k, v in cased.items()},
            "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
            "multiValueQueryStringParameters": multi or None,
            "requestContext": {
                "accountId": shape.account_id,
                "apiId": shape.api_id,
                "domainName": shape.domain,
                "domainPrefix": domain_prefix,
                "extendedRequestId": request_id,
                "httpMethod": method,
                "identity": {
                    "accessKey": None,
                    "accountId": None,
                    "caller": None,
                    "cognitoAuthenticationProvider": None,
                    "cognitoAuthenticationType": None,
                    "cognitoIdentityId": None,
                    "cognitoIdentityPoolId": None,
                    "principalOrgId": None,
                    "sourceIp": SOURCE_IP,
                    "user": None,
                    "userAgent": USER_AGENT,
                    "userArn": None,
                },
                "path": path,
                "protocol": "HTTP/1.1",
                "requestId": request_id,
                "requestTime": when,
                "requestTimeEpoch": epoch_ms,
                "resourceId": shape.route_key,
                "resourcePath": resource,
                "stage": shape.stage,
            },
            "pathParameters": path_parameters,
            "stageVariables": None,
            "body": None,
            "isBase64Encoded": False,
        }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": shape.route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": shape.account_id,
            "apiId": shape.api_id,
            "domainName": shape.domain,
            "domainPrefix": domain_prefix,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": SOURCE_IP,
                "userAgent": USER_AGENT,
            },
            "requestId": request_id,
            "routeKey": shape.route_key,
            "stage": shape.stage,
            "time": when,
            "timeEpoch": epoch_ms,
        },
        "isBase64Encoded": False,
    }
    if pairs:
        # Format 2.0 joins repeated parameters with commas.
        joined: dict[str, str] = {}
        for key, value in pairs:
            joined[key] = f"{joined[key]},{value}" if key in joined else value
        event["queryStringParameters"] = joined
    if path_parameters:
        event["pathParameters"] = path_parameters
    return event


# --- the answer ------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthAnswer:
    healthy: bool
    message: str  # "GET /healthz answered 500: {"error": "db down"}"
    status: int | None = None  # what API Gateway would answer the client
    body: str = ""  # the first BODY_EXCERPT characters of the app's body
    retryable: bool = False  # Lambda throttled or erred on the invoke: the app was never asked


def _excerpt(text: str) -> str:
    text = text.strip()
    return text if len(text) <= BODY_EXCERPT else text[:BODY_EXCERPT] + "…"


def _body_text(answer: dict[str, Any]) -> str:
    body = answer.get("body")
    if body is None:
        return ""
    if not isinstance(body, str):
        return json.dumps(body)
    if answer.get("isBase64Encoded"):
        try:
            return base64.b64decode(body).decode("utf-8", "replace")
        except ValueError:
            return body
    return body


def _status(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def judge(
    check: HealthCheck, payload_format: str, *, raw: str, function_error: str = ""
) -> HealthAnswer:
    """The function's answer as API Gateway would read it, against the declared statuses."""
    request = f"{check.method.upper()} {check.path}"
    if function_error:
        # API Gateway answers 500 to the client; the function's own words say why.
        try:
            error = json.loads(raw)
        except ValueError:
            error = None
        if isinstance(error, dict):
            what = f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}"
        else:
            what = raw
        return HealthAnswer(
            False,
            f"{request} failed in the function ({function_error}): {_excerpt(what)}",
            status=500,
            body=_excerpt(raw),
        )
    try:
        answer = json.loads(raw)
    except ValueError:
        return HealthAnswer(
            False,
            f"{request} answered with something that is not JSON, which API Gateway turns "
            f"into 500: {_excerpt(raw)}",
            status=500,
            body=_excerpt(raw),
        )
    if isinstance(answer, dict) and "statusCode" in answer:
        status = _status(answer["statusCode"])
        if status is None:
            return HealthAnswer(
                False,
                f"{request} answered statusCode {answer['statusCode']!r}, which is not an "
                "HTTP status: API Gateway turns that into 500",
                status=500,
            )
        body = _excerpt(_body_text(answer))
    elif payload_format == "1.0":
        return HealthAnswer(
            False,
            f"{request} answered without a statusCode, which payload format 1.0 requires "
            f"(API Gateway turns that into 500): {_excerpt(raw)}",
            status=500,
            body=_excerpt(raw),
        )
    else:
        # Format 2.0: valid JSON without a statusCode is a 200 whose body is the answer.
        status, body = 200, _excerpt(answer if isinstance(answer, str) else raw)
    message = f"{request} answered {status}" + (f": {body}" if body else "")
    return HealthAnswer(accepts(check.statuses, status), message, status=status, body=body)


def check(tenant: Tenant, *, spec: HealthCheck, qualifier: str) -> HealthAnswer:
    """Send the check's request to ``qualifier`` (a version number or the alias) of the
    tenant's function, in its API's payload format, and judge the answer."""
    shape = api_shape(tenant)
    event = health_event(spec, shape)
    request = f"{spec.method.upper()} {spec.path}"
    try:
        _status_code, raw, function_error = lambda_.invoke_within(
            name=naming.function_name(tenant.slug),
            qualifier=qualifier,
            payload=event,
            timeout_s=spec.timeout_s,
            region=tenant.region,
        )
    except AwsError as exc:
        if exc.code == "InvokeTimeout":
            return HealthAnswer(False, f"{request} gave no answer within {spec.timeout_s} s")
        return HealthAnswer(
            False,
            f"{request} could not be sent: Lambda answered {exc}",
            retryable=not exc.permanent,
        )
    return judge(spec, shape.payload_format, raw=raw, function_error=function_error)

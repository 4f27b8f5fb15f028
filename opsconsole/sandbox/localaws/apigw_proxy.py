"""HTTP APIs answer real HTTP: requests become Lambda proxy events, the function runs.

Served at ``<local AWS>/_aws/execute-api/<api-id>/<path>``, and for requests whose Host is
``<api-id>.execute-api.<region>.amazonaws.com`` (any port) or a custom domain name with API
mappings (moto's apigatewayv2 backend, any region). Then, as API Gateway does:

1. Stage: a custom domain's mapping names it (longest matching mapping key); else the
   first path segment when it names a stage, else ``$default``; no such stage: 404
   ``{"message":"Not Found"}``.
2. Route (``apigw_routes``): an exact ``METHOD /path`` (path variables ``{id}`` match one
   segment), then a greedy ``{proxy+}``, ``ANY`` after a method of its own, then
   ``$default``; none: 404.
3. The route's AWS_PROXY integration to a Lambda function or alias (its ARN, or the
   ``arn:aws:apigateway:<region>:lambda:path/2015-03-31/functions/<arn>/invocations``
   form): the function's resource policy must let ``apigateway.amazonaws.com`` invoke it
   for this API (SourceArn ``arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>
   <path>``), or the answer is 500, as in AWS, where a missing permission is an
   integration failure; the event of the integration's payload format version
   (``apigw_events``) goes to ``lambda_invoke.invoke``.
   Before the route: an API with a CorsConfiguration answers CORS preflights itself
   (``apigw_cors``), and a stage's default route throttling may answer 429
   (``apigw_throttle``).
4. The answer: mapped back (status, headers, cookies, base64 bodies), with the API's CORS
   headers in place of the function's; a function error,
   a throttled invoke or an answer that cannot be mapped is 500
   ``{"message":"Internal Server Error"}``; no answer within the integration's timeout
   (30 s by default) is 503 ``{"message":"Service Unavailable"}``, as HTTP APIs answer.

Each request carries ``apigw-requestid`` and writes AWS/ApiGateway Count, 4xx, 5xx, Latency,
IntegrationLatency (ms) and DataProcessed (bytes) by ApiId and by ApiId + Stage, as HTTP
APIs publish them (route-level "detailed metrics" are not written).
A stage with AccessLogSettings gets a line a request in its log group
(``apigw_access_log``).

Lookups are cached per API (and per domain) and dropped whenever any apigatewayv2 call
changes something (a generation counter bumped by every create/update/delete/import), so
200 requests/s never scan the backends.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from moto.apigatewayv2 import models as apigw_models
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from opsconsole.sandbox.localaws import (
    apigw_access_log,
    apigw_cors,
    apigw_events,
    apigw_routes,
    apigw_throttle,
    lambda_invoke,
    telemetry,
)
from opsconsole.sandbox.localaws.apigw_events import ApiRequest, Malformed
from opsconsole.sandbox.localaws.config import LocalAwsConfig
from opsconsole.sandbox.localaws.moto_state import ACCOUNT_ID, backend, regions_with

logger = logging.getLogger(__name__)

PREFIX = "/_aws/execute-api/"
HEADER_LIST = "localaws.header_list"
_EXECUTE_API_HOST = re.compile(r"^([a-z0-9]+)\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")
DEFAULT_TIMEOUT_MS = 30_000

NOT_FOUND = (404, b'{"message":"Not Found"}')
INTERNAL_ERROR = (500, b'{"message":"Internal Server Error"}')
UNAVAILABLE = (503, b'{"message":"Service Unavailable"}')

_generation = 0
_cache_lock = threading.Lock()
_apis: dict[str, tuple[int, str, Any, Any]] = {}  # api id -> (generation, region, backend, api)
_domains: dict[str, tuple[int, str | None, list]] = {}
# Invokes run here so the integration timeout answers on time while the function runs on.
_pool = ThreadPoolExecutor(
    max_workers=int(os.environ.get("LOCALAWS_APIGW_WORKERS", "128")),
    thread_name_prefix="apigw-invoke",
)
_installed = False


def install(config: LocalAwsConfig) -> None:
    global _installed
    if _installed:
        return
    _installed = True
    # WSGI folds repeated headers into one comma-joined value; 1.0's multiValueHeaders
    # needs them apart, so the server keeps the header list as it was received.
    original_environ = WSGIRequestHandler.make_environ

    def make_environ(self: WSGIRequestHandler) -> dict[str, Any]:
        environ = original_environ(self)
        environ[HEADER_LIST] = list(self.headers.items())
        return environ

    WSGIRequestHandler.make_environ = make_environ  # type: ignore[method-assign]
    cls = apigw_models.ApiGatewayV2Backend
    for name in dir(cls):
        if name.startswith(
            ("create_", "update_", "delete_", "import_", "reimport_", "tag_", "untag_")
        ):
            setattr(cls, name, _bumping(getattr(cls, name)))


def _bumping(method: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _generation
        try:
            return method(*args, **kwargs)
        finally:
            _generation += 1

    wrapper.__name__ = method.__name__
    return wrapper


# --- finding what a request is for ------------------------------------------------------


@dataclass
class Target:
    region: str
    api: Any
    stage: str
    stage_variables: dict[str, str]
    route_path: str  # decoded, for route selection: no stage, no mapping key
    raw_path: str  # 2.0 rawPath
    path_v1: str  # 1.0 path
    domain_name: str
    domain_prefix: str


def _find_api(api_id: str) -> tuple[str, Any] | None:
    cached = _apis.get(api_id)
    if cached and cached[0] == _generation and backend("apigatewayv2", cached[1]) is cached[2]:
        return cached[1], cached[3]
    generation = _generation
    for region in regions_with("apigatewayv2"):
        be = backend("apigatewayv2", region)
        api = be.apis.get(api_id)
        if api is not None:
            with _cache_lock:
                _apis[api_id] = (generation, region, be, api)
            return region, api
    return None


def _stage_of(api: Any, raw_path: str) -> tuple[str, str] | None:
    """(stage, path within it) for the API's own endpoint."""
    first = raw_path.lstrip("/").split("/", 1)[0]
    if first and first != "$default" and unquote(first) in api.stages:
        rest = raw_path.lstrip("/")[len(first) :]
        return unquote(first), rest or "/"
    if "$default" in api.stages:
        return "$default", raw_path or "/"
    return None


def _domain_mappings(host: str) -> tuple[str | None, list]:
    cached = _domains.get(host)
    if cached and cached[0] == _generation:
        return cached[1], cached[2]
    generation, region, mappings = _generation, None, []
    for candidate in regions_with("apigatewayv2"):
        be = backend("apigatewayv2", candidate)
        if host in be.domain_names:
            region = candidate
            mappings = [m for m in be.api_mappings.values() if m.domain_name == host]
            break
    # Longest key first: "orders/v1" before "orders" before "".
    mappings.sort(key=lambda m: len(m.api_mapping_key or ""), reverse=True)
    with _cache_lock:
        _domains[host] = (generation, region, mappings)
    return region, mappings


def _target(request: Request) -> Target | None | tuple[int, bytes]:
    """What the request is for; None when it is not an execute-api request at all."""
    raw_path = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
    raw_path = raw_path.split("?", 1)[0] or "/"
    host = (request.host or "").rsplit(":", 1)[0].lower() if request.host else ""
    if raw_path.startswith(PREFIX):
        api_id, _, rest = raw_path[len(PREFIX) :].partition("/")
        rest = "/" + rest
    elif (match := _EXECUTE_API_HOST.match(host)) and _find_api(match.group(1)):
        # An id no HTTP API has may be a REST API's: moto serves those.
        api_id, rest = match.group(1), raw_path
    elif host and not host[0].isdigit() and host != "localhost":
        return _domain_target(host, raw_path)
    else:
        return None
    found = _find_api(api_id)
    if found is None:
        return NOT_FOUND
    region, api = found
    staged = _stage_of(api, rest)
    if staged is None:
        return NOT_FOUND
    stage, inner = staged
    return Target(
        region=region,
        api=api,
        stage=stage,
        stage_variables=dict(api.stages[stage].stage_variables or {}),
        route_path=unquote(inner),
        raw_path=rest,
        path_v1=rest,
        domain_name=f"{api.api_id}.execute-api.{region}.amazonaws.com",
        domain_prefix=api.api_id,
    )


def _domain_target(host: str, raw_path: str) -> Target | None | tuple[int, bytes]:
    region, mappings = _domain_mappings(host)
    if region is None:
        return None  # not a domain any API knows: moto's (S3 virtual hosts, ...)
    segments = raw_path.lstrip("/").split("/")
    for mapping in mappings:
        key = [s for s in (mapping.api_mapping_key or "").split("/") if s]
        if [unquote(s) for s in segments[: len(key)]] != key:
            continue
        inner = "/" + "/".join(segments[len(key) :])
        found = _find_api(mapping.api_id)
        if found is None or mapping.stage not in found[1].stages:
            return NOT_FOUND
        api = found[1]
        return Target(
            region=found[0],
            api=api,
            stage=mapping.stage,
            stage_variables=dict(api.stages[mapping.stage].stage_variables or {}),
            route_path=unquote(inner),
            raw_path=inner,
            path_v1=raw_path,
            domain_name=host,
            domain_prefix=host.split(".", 1)[0],
        )
    return NOT_FOUND


# --- serving ------------------------------------------------------------------------------


def _request_id() -> str:
    # HTTP APIs' ids look like "RL2XYiwjPHcEMEQ=": 11 random bytes, base64.
    return base64.b64encode(os.urandom(11)).decode("ascii").replace("+", "A").replace("/", "B")


def route(request: Request) -> Response | None:
    started = time.perf_counter()
    epoch_ms = int(time.time() * 1000)
    target = _target(request)
    if target is None:
        return None
    request_id = _request_id()
    if isinstance(target, tuple):
        # No such API or stage: nothing to count it for (HTTP APIs write nothing either).
        return _respond(*_error(target), request_id)
    info: dict[str, Any] = {}
    stage = target.api.stages.get(target.stage)
    cors = target.api.cors_configuration
    answered = apigw_cors.preflight(cors, request)
    integration_ms = None
    if answered is not None:
        status, headers, body = answered
    elif not apigw_throttle.admit(target.api.api_id, target.stage, stage):
        status, headers, body = _error(apigw_throttle.TOO_MANY)
    else:
        status, headers, body, integration_ms = _serve(request, target, request_id, info)
        headers = apigw_cors.response_headers(cors, request, headers)
    latency_ms = (time.perf_counter() - started) * 1000
    size = len(request.get_data(cache=True)) + len(body)
    _metrics(target, status, latency_ms, integration_ms, size)
    apigw_access_log.write(
        stage,
        target.region,
        apigw_access_log.Entry(
            account_id=ACCOUNT_ID,
            api_id=target.api.api_id,
            stage=target.stage,
            domain_name=target.domain_name,
            domain_prefix=target.domain_prefix,
            request_id=request_id,
            source_ip=request.remote_addr or "127.0.0.1",
            user_agent=request.headers.get("User-Agent", ""),
            epoch_ms=epoch_ms,
            method=request.method.upper(),
            path=target.path_v1,
            protocol=request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            route_key=info.get("route_key", "-"),
            status=status,
            response_length=len(body),
            response_latency_ms=latency_ms,
            integration_latency_ms=integration_ms,
            integration_status=info.get("integration_status"),
            integration_error=info.get("integration_error", ""),
        ),
    )
    return _respond(status, headers, body, request_id)


def _respond(status: int, headers: list[tuple[str, str]], body: bytes, request_id: str) -> Response:
    response = Response(body, status=status)
    response.headers.remove("Content-Type")  # only what the function (or we) said
    for name, value in headers:
        response.headers.add(name, value)
    response.headers["apigw-requestid"] = request_id
    return response


Answer = tuple[int, list[tuple[str, str]], bytes]


def _error(status_body: tuple[int, bytes]) -> Answer:
    return status_body[0], [("content-type", "application/json")], status_body[1]


def _serve(
    request: Request, target: Target, request_id: str, info: dict[str, Any]
) -> tuple[int, list, bytes, Any]:
    """(status, headers, body, integration latency in ms or None). ``info`` gets what the
    access log tells: the route key, the integration's status and error message."""
    method = request.method.upper()
    selected = apigw_routes.select_route(target.api, method, target.route_path, _generation)
    if selected is None:
        return (*_error(NOT_FOUND), None)
    route_model, match = selected
    info["route_key"] = match.route_key
    integration_id = (route_model.target or "").removeprefix("integrations/")
    integration = target.api.integrations.get(integration_id) if integration_id else None
    if integration is None:
        return (*_error(NOT_FOUND), None)
    function = apigw_routes.function_target(integration.integration_uri or "")
    if (integration.integration_type or "").upper() != "AWS_PROXY" or function is None:
        logger.warning(
            "API %s route %s: integration %s (%s %s) is not a Lambda proxy; the sandbox "
            "serves only those",
            target.api.api_id,
            match.route_key,
            integration_id,
            integration.integration_type,
            integration.integration_uri,
        )
        info["integration_error"] = "The integration is not a Lambda proxy integration"
        return (*_error(INTERNAL_ERROR), None)
    fn_region, fn_name, qualifier = function
    fn_region = fn_region or target.region
    resource = match.resource if match.route_key != "$default" else ""
    source_arn = (
        f"arn:aws:execute-api:{target.region}:{ACCOUNT_ID}:{target.api.api_id}/{target.stage}/"
        + (f"{method}{resource}" if resource else "$default")
    )
    if not apigw_routes.permitted(fn_region, fn_name, qualifier, source_arn):
        logger.warning(
            "API %s: the resource policy of %s%s does not let apigateway.amazonaws.com invoke "
            "it from %s (lambda add-permission is missing)",
            target.api.api_id,
            fn_name,
            f":{qualifier}" if qualifier else "",
            source_arn,
        )
        info["integration_error"] = (
            "The IAM role configured on the integration or API Gateway doesn't have "
            "permissions to call the integration. Check the permissions and try again."
        )
        return (*_error(INTERNAL_ERROR), None)

    api_request = ApiRequest(
        method=method,
        raw_path=target.raw_path,
        path_v1=target.path_v1,
        raw_query=request.query_string.decode("latin-1"),
        headers=_headers(request),
        body=request.get_data(cache=True),
        source_ip=request.remote_addr or "127.0.0.1",
        request_id=request_id,
        domain_name=target.domain_name,
        domain_prefix=target.domain_prefix,
        protocol=request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
    )
    v1 = (integration.payload_format_version or "2.0") == "1.0"
    event = (apigw_events.event_v1 if v1 else apigw_events.event_v2)(
        api_request,
        match,
        account=ACCOUNT_ID,
        api_id=target.api.api_id,
        stage=target.stage,
        stage_variables=target.stage_variables,
    )
    timeout_s = (integration.timeout_in_millis or DEFAULT_TIMEOUT_MS) / 1000
    invoked = time.perf_counter()
    future = _pool.submit(
        lambda_invoke.invoke,
        region=fn_region,
        function=fn_name,
        qualifier=qualifier,
        payload=json.dumps(event).encode("utf-8"),
    )
    try:
        result = future.result(timeout=timeout_s)
    except FutureTimeout:
        logger.info("API %s: %s gave no answer in %.0f s", target.api.api_id, fn_name, timeout_s)
        info["integration_error"] = "Network error communicating with endpoint"
        return (*_error(UNAVAILABLE), None)
    info["integration_status"] = result.status
    integration_ms = (time.perf_counter() - invoked) * 1000
    if result.status != 200 or result.function_error:
        logger.info(
            "API %s: invoke of %s answered %s %s",
            target.api.api_id,
            fn_name,
            result.status,
            result.function_error or getattr(result, "error_type", None) or "",
        )
        info["integration_error"] = (
            "The Lambda function returned an error"
            if result.function_error
            else f"Lambda answered {result.status}"
        )
        return (*_error(INTERNAL_ERROR), integration_ms)
    try:
        answer = (apigw_events.answer_v1 if v1 else apigw_events.answer_v2)(result.payload)
    except Malformed as exc:
        logger.info("API %s: %s's answer cannot be mapped (%s)", target.api.api_id, fn_name, exc)
        info["integration_error"] = f"The Lambda function's response cannot be mapped: {exc}"
        return (*_error(INTERNAL_ERROR), integration_ms)
    return (*answer, integration_ms)


def _headers(request: Request) -> list[tuple[str, str]]:
    received = request.environ.get(HEADER_LIST) or request.headers.items()
    out = [(name.lower(), value) for name, value in received]
    names = {name for name, _ in out}
    # What API Gateway adds in front of every integration.
    if "x-forwarded-for" not in names:
        out.append(("x-forwarded-for", request.remote_addr or "127.0.0.1"))
    else:
        out = [(n, f"{v}, {request.remote_addr}" if n == "x-forwarded-for" else v) for n, v in out]
    out.append(("x-forwarded-port", str(request.environ.get("SERVER_PORT", ""))))
    out.append(("x-forwarded-proto", request.scheme))
    trace = f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()}"
    out.append(("x-amzn-trace-id", trace))
    return out


def _metrics(
    target: Target, status: int, latency_ms: float, integration_ms: float | None, size: int
) -> None:
    values = [
        ("Count", 1.0, "Count"),
        ("4xx", float(400 <= status < 500), "Count"),
        ("5xx", float(status >= 500), "Count"),
        ("Latency", latency_ms, "Milliseconds"),
        ("DataProcessed", float(size), "Bytes"),
    ]
    if integration_ms is not None:
        values.append(("IntegrationLatency", integration_ms, "Milliseconds"))
    api_dims = [{"Name": "ApiId", "Value": target.api.api_id}]
    data = [
        {"MetricName": name, "Dimensions": dims, "Value": value, "Unit": unit}
        for dims in (api_dims, [*api_dims, {"Name": "Stage", "Value": target.stage}])
        for name, value, unit in values
    ]
    try:
        telemetry.put_metrics(region=target.region, namespace="AWS/ApiGateway", data=data)
    except Exception:  # noqa: BLE001 - metrics must never fail a request
        logger.exception("writing AWS/ApiGateway metrics failed")

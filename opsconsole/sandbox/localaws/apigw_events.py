"""An HTTP API request as the event of a Lambda proxy integration, and the function's
answer as the HTTP response, for payload format versions 2.0 and 1.0.

Shapes as API Gateway's "Lambda proxy integrations for HTTP APIs" documents them:

- 2.0: ``version``, ``routeKey``, ``rawPath``, ``rawQueryString``, ``cookies`` (the Cookie
  header split into its cookies, and taken out of ``headers``), ``headers`` (names lower
  case, repeated headers joined with commas), ``queryStringParameters`` (decoded, repeated
  names joined with commas), ``pathParameters``, ``stageVariables``, ``requestContext``
  (``accountId``, ``apiId``, ``domainName``, ``domainPrefix``, ``http`` {method, path,
  protocol, sourceIp, userAgent}, ``requestId``, ``routeKey``, ``stage``, ``time``,
  ``timeEpoch``), ``body``, ``isBase64Encoded``; keys without a value are left out, as
  API Gateway leaves them out. The answer: an object with ``statusCode`` is read as
  {statusCode, headers, cookies, body, isBase64Encoded}; any other valid JSON is the body of
  a 200 ``application/json`` answer (a JSON string is the body itself).
- 1.0: ``version``, ``resource`` (the route's path, ``$default`` for the default route),
  ``path``, ``httpMethod``, ``headers`` / ``multiValueHeaders``,
  ``queryStringParameters`` (last value) / ``multiValueQueryStringParameters``,
  ``pathParameters``, ``stageVariables`` (null when empty), ``requestContext`` (with
  ``httpMethod``, ``path``, ``stage``, ``resourcePath``, ``identity`` {sourceIp, userAgent}),
  ``body``, ``isBase64Encoded``. The answer must be {statusCode, headers, multiValueHeaders,
  body, isBase64Encoded}: API Gateway assumes nothing for 1.0.

A named stage stays in the path the function sees (``rawPath`` / ``path`` are
``/<stage>/...``, as on AWS; frameworks strip it with their base-path setting); a custom
domain's API mapping key is not in 2.0's ``rawPath`` but is in 1.0's ``path``.

Bodies: text (``text/*``, JSON, XML, JavaScript, by Content-Type) as it came when it is
UTF-8, anything else base64 with ``isBase64Encoded`` true.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote


@dataclass
class ApiRequest:
    """What the proxy learnt about one request (see ``apigw_proxy``)."""

    method: str
    raw_path: str  # the path the function is told about (2.0 rawPath), percent-encoded
    path_v1: str  # 1.0's path (with a custom domain's mapping key)
    raw_query: str
    headers: list[tuple[str, str]]  # names lower case, in order
    body: bytes
    source_ip: str
    request_id: str
    domain_name: str
    domain_prefix: str
    protocol: str = "HTTP/1.1"
    time_epoch_ms: int = field(default_factory=lambda: int(time.time() * 1000))


@dataclass
class Match:
    route_key: str  # "GET /pets/{id}" or "$default"
    path_parameters: dict[str, str]

    @property
    def resource(self) -> str:
        return self.route_key.split(" ", 1)[1] if " " in self.route_key else self.route_key


class Malformed(Exception):
    """The function's answer is not one API Gateway can map."""


_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
_TEXT_SUFFIXES = ("+json", "+xml")


def _is_text(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith(_TEXT_TYPES) or kind.endswith(_TEXT_SUFFIXES)


def encode_body(body: bytes, content_type: str) -> tuple[str | None, bool]:
    """(body as the event carries it, isBase64Encoded)."""
    if not body:
        return None, False
    if _is_text(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _request_time(epoch_ms: int) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_ms / 1000))


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    return parse_qsl(raw_query, keep_blank_values=True)


def _header(request: ApiRequest, name: str) -> str:
    values = [v for k, v in request.headers if k == name]
    return ",".join(values)


def event_v2(
    request: ApiRequest,
    match: Match,
    *,
    account: str,
    api_id: str,
    stage: str,
    stage_variables: dict[str, str],
) -> dict[str, Any]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    query: dict[str, str] = {}
    for name, value in _query_pairs(request.raw_query):
        query[name] = f"{query[name]},{value}" if name in query else value
    body, is_b64 = encode_body(request.body, headers.get("content-type", ""))
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": match.route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": account,
        "apiId": api_id,
        "domainName": request.domain_name,
        "domainPrefix": request.domain_prefix,
        "http": {
            "method": request.method,
            "path": unquote(request.raw_path),
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request.request_id,
        "routeKey": match.route_key,
        "stage": stage,
        "time": _request_time(request.time_epoch_ms),
        "timeEpoch": request.time_epoch_ms,
    }
    if match.path_parameters:
        event["pathParameters"] = dict(match.path_parameters)
    if stage_variables:
        event["stageVariables"] = dict(stage_variables)
    if body is not None:
        event["body"] = body
    event["isBase64Encoded"] = is_b64
    return event


def event_v1(
    request: ApiRequest,
    match: Match,
    *,
    account: str,
    api_id: str,
    stage: str,
    stage_variables: dict[str, str],
) -> dict[str, Any]:
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in _query_pairs(request.raw_query):
        query[name] = value
        multi_query.setdefault(name, []).append(value)
    body, is_b64 = encode_body(request.body, headers.get("content-type", ""))
    user_agent = headers.get("user-agent", "")
    return {
        "version": "1.0",
        "resource": match.resource,
        "path": request.path_v1,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "requestContext": {
            "accountId": account,
            "apiId": api_id,
            "domainName": request.domain_name,
            "domainPrefix": request.domain_prefix,
            "extendedRequestId": request.request_id,
            "httpMethod": request.method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": request.source_ip,
                "user": None,
                "userAgent": user_agent,
                "userArn": None,
            },
            "path": request.path_v1,
            "protocol": request.protocol,
            "requestId": request.request_id,
            "requestTime": _request_time(request.time_epoch_ms),
            "requestTimeEpoch": request.time_epoch_ms,
            "resourceId": match.route_key,
            "resourcePath": match.resource,
            "stage": stage,
        },
        "pathParameters": dict(match.path_parameters) or None,
        "stageVariables": dict(stage_variables) or None,
        "body": body,
        "isBase64Encoded": is_b64,
    }


# --- the function's answer -----------------------------------------------------------------

Answer = tuple[int, list[tuple[str, str]], bytes]
# The server frames the body itself; these from a function would only break the framing.
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}


def _status(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Malformed(f"statusCode {value!r} is not a number")
    try:
        status = int(value)
    except ValueError as exc:
        raise Malformed(f"statusCode {value!r} is not a number") from exc
    if not 100 <= status <= 599:
        raise Malformed(f"statusCode {status} is not an HTTP status")
    return status


def _body(document: dict[str, Any]) -> bytes:
    body = document.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise Malformed("body is not a string")
    if document.get("isBase64Encoded") is True:
        try:
            return base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise Malformed("body is not valid base64") from exc
    return body.encode("utf-8")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise Malformed(f"header value {value!r} is not a string")


def _headers(value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise Malformed("headers is not an object")
    return [(str(k), _scalar(v)) for k, v in value.items() if str(k).lower() not in _HOP_BY_HOP]


def answer_v2(payload: bytes) -> Answer:
    try:
        document = json.loads(payload)
    except ValueError as exc:
        raise Malformed("the function's answer is not JSON") from exc
    if not (isinstance(document, dict) and "statusCode" in document):
        # "If your Lambda function returns valid JSON and doesn't return a statusCode, API
        # Gateway assumes" a 200 JSON answer whose body is the function's answer.
        body = document if isinstance(document, str) else payload.decode("utf-8")
        return 200, [("content-type", "application/json")], body.encode("utf-8")
    headers = _headers(document.get("headers"))
    cookies = document.get("cookies") or []
    if not isinstance(cookies, list):
        raise Malformed("cookies is not a list")
    headers += [("set-cookie", _scalar(c)) for c in cookies]
    return _status(document["statusCode"]), headers, _body(document)


def answer_v1(payload: bytes) -> Answer:
    try:
        document = json.loads(payload)
    except ValueError as exc:
        raise Malformed("the function's answer is not JSON") from exc
    if not isinstance(document, dict) or "statusCode" not in document:
        raise Malformed("a 1.0 answer needs statusCode")
    multi = document.get("multiValueHeaders") or {}
    if not isinstance(multi, dict) or not all(isinstance(v, list) for v in multi.values()):
        raise Malformed("multiValueHeaders is not an object of lists")
    multi_names = {str(k).lower() for k in multi}
    # Both given: a name in multiValueHeaders takes its values from there only.
    headers = [(k, v) for k, v in _headers(document.get("headers")) if k.lower() not in multi_names]
    for name, values in multi.items():
        if str(name).lower() not in _HOP_BY_HOP:
            headers += [(str(name), _scalar(v)) for v in values]
    return _status(document["statusCode"]), headers, _body(document)

"""HTTP for a function behind an API Gateway HTTP API: the request out of the event, the
response back, and one log line per request.

Payload format 2.0 (what the console's HTTP APIs send) and 1.0 (``APIGatewayProxyRequest``)
are both read, so the app answers whichever integration calls it.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

# The release this code is, written into the package by whoever built it.
RELEASE = (Path(__file__).parent / "RELEASE").read_text(encoding="utf-8").strip()


class BadRequest(Exception):  # noqa: N818 - the client's mistake, answered with 400
    pass


class Request:
    def __init__(self, event: dict) -> None:
        event = event if isinstance(event, dict) else {}
        context = event.get("requestContext") or {}
        http = context.get("http")
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        if http:  # 2.0
            self.method = http.get("method") or "GET"
            self.path = event.get("rawPath") or http.get("path") or "/"
            self.user_agent = http.get("userAgent") or headers.get("user-agent", "")
        else:  # 1.0
            self.method = event.get("httpMethod") or "GET"
            self.path = event.get("path") or "/"
            self.user_agent = headers.get("user-agent", "")
        self.headers = headers
        self.query = event.get("queryStringParameters") or {}
        body = event.get("body") or ""
        if body and event.get("isBase64Encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        self.body = body

    def json(self) -> dict:
        try:
            value = json.loads(self.body or "null")
        except ValueError as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise BadRequest("the body must be a JSON object")
        return value


def response(status: int, body: dict) -> dict:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "x-app-release": RELEASE},
        "body": json.dumps(body, default=str),
    }


def serve(routes: dict, event: dict) -> dict:
    """Answer ``event`` with the route for its method and path; log one line for it.

    An exception a route does not handle is not caught: the runtime reports it as the
    function's error (and API Gateway answers 500), as it would for any app.
    """
    request = Request(event)
    started = time.perf_counter()
    status: int | str = "unhandled error"
    try:
        route = routes.get((request.method, request.path))
        if route is None:
            known = sorted({path for _, path in routes})
            if request.path in known:
                status, body = 405, {"message": f"{request.method} is not allowed here"}
            else:
                status, body = 404, {"message": "no such route", "routes": known}
        else:
            try:
                status, body = route(request)
            except BadRequest as exc:
                status, body = 400, {"message": str(exc)}
        return response(status, body)
    finally:
        elapsed = (time.perf_counter() - started) * 1000
        level = "INFO"
        if not isinstance(status, int) or status >= 500:
            level = "ERROR"
        elif status >= 400:
            level = "WARN"
        print(
            f"{level} {request.method} {request.path} {status} {elapsed:.1f}ms "
            f"release={RELEASE} ua={request.user_agent or '-'}",
            flush=True,
        )

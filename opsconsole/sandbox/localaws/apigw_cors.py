"""An HTTP API's CORS configuration, applied as API Gateway applies it.

From "Configure CORS for HTTP APIs": with a CorsConfiguration on the API, API Gateway
answers preflight requests itself (OPTIONS with ``Origin`` and
``Access-Control-Request-Method``), even when no OPTIONS route exists, so the function is
never invoked for them; to other requests that carry an ``Origin`` it adds the configured
CORS headers, and it ignores the CORS headers the integration returns. Without an
``Origin`` there are no CORS headers at all.

Preflights are answered 204 with no body. An origin that is not allowed gets the 204
without any Access-Control-* header, which a browser reads as a refusal.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

Headers = list[tuple[str, str]]


def _allowed_origin(cors: dict[str, Any], origin: str) -> str | None:
    """What Access-Control-Allow-Origin says for ``origin``, or None when not allowed."""
    allowed = cors.get("allowOrigins") or []
    if "*" in allowed:
        return "*"
    wanted = origin.rstrip("/").lower()
    for candidate in allowed:
        if candidate.rstrip("/").lower() == wanted:
            return origin
    return None


def preflight(cors: dict[str, Any] | None, request: Request) -> tuple[int, Headers, bytes] | None:
    """The API's own answer to a CORS preflight, or None when this is not one (or the
    API has no CORS configuration: the request goes to a route like any other)."""
    if not cors or request.method.upper() != "OPTIONS":
        return None
    origin = request.headers.get("Origin")
    if not origin or not request.headers.get("Access-Control-Request-Method"):
        return None
    allow_origin = _allowed_origin(cors, origin)
    if allow_origin is None:
        return 204, [], b""
    headers: Headers = [("access-control-allow-origin", allow_origin)]
    if cors.get("allowMethods"):
        headers.append(("access-control-allow-methods", ",".join(cors["allowMethods"])))
    if cors.get("allowHeaders"):
        headers.append(("access-control-allow-headers", ",".join(cors["allowHeaders"])))
    if cors.get("allowCredentials"):
        headers.append(("access-control-allow-credentials", "true"))
    if cors.get("maxAge"):
        headers.append(("access-control-max-age", str(cors["maxAge"])))
    return 204, headers, b""


def response_headers(cors: dict[str, Any] | None, request: Request, headers: Headers) -> Headers:
    """The integration's answer's headers with the API's CORS headers in place of its own."""
    if not cors:
        return headers
    out = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
    origin = request.headers.get("Origin")
    allow_origin = _allowed_origin(cors, origin) if origin else None
    if allow_origin is None:
        return out
    out.append(("access-control-allow-origin", allow_origin))
    if cors.get("exposeHeaders"):
        out.append(("access-control-expose-headers", ",".join(cors["exposeHeaders"])))
    if cors.get("allowCredentials"):
        out.append(("access-control-allow-credentials", "true"))
    return out

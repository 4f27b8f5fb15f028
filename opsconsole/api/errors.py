"""Every API error is JSON: ``{"message": ..., "field": ..., "problems": [...]}``.

``field`` names the first field at fault (``"version"``, ``"body.memory_mb"``), and
``problems`` lists each one, so a CI log shows what to fix without a second request.
"""

from __future__ import annotations

import re
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

# Where ninja found a value (the body, a form, the query): not part of the field's name.
_WHERE = {"body", "payload", "form", "query", "path", "file", "header", "cookie"}
_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_.\[\]]*): (.+)$", re.S)


class ApiError(Exception):
    """Raised by an endpoint: answered with ``status`` and the JSON error body."""

    def __init__(self, status: int, message: str, *, problems=None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems or []
        self.headers = headers or {}


def problem(text: str) -> dict[str, str | None]:
    """``"version: already registered"`` -> ``{"field": "version", "message": ...}``."""
    match = _FIELD_PREFIX.match(text)
    if match:
        return {"field": match.group(1), "message": match.group(2)}
    return {"field": None, "message": text}


def refused(problems: list[str], status: int = 400) -> ApiError:
    items = [problem(p) for p in problems] or [problem("refused")]
    return ApiError(status, items[0]["message"], problems=items)


def form_refused(form) -> ApiError:
    """A Django form's errors, with the API's field names (``env_vars``, not
    ``env_vars_text``)."""
    items = []
    for field, errors in form.errors.get_json_data().items():
        name = None if field == "__all__" else field.removesuffix("_text")
        items += [{"field": name, "message": e["message"]} for e in errors]
    return ApiError(400, items[0]["message"] if items else "refused", problems=items)


def _body(message: str, problems: list[dict]) -> dict[str, Any]:
    return {
        "message": message,
        "field": next((p["field"] for p in problems if p.get("field")), None),
        "problems": problems,
    }


def error_response(status: int, message: str, field: str | None = None) -> JsonResponse:
    """The API's error body outside ninja (middlewares, the URL resolver's 404 and 500)."""
    problems = [{"field": field, "message": message}] if field else []
    return JsonResponse(_body(message, problems), status=status)


def install(api: NinjaAPI) -> None:
    def answer(request, status, message, problems=(), headers=None) -> HttpResponse:
        response = api.create_response(request, _body(message, list(problems)), status=status)
        for name, value in (headers or {}).items():
            response[name] = value
        return response

    @api.exception_handler(ApiError)
    def _api_error(request: HttpRequest, exc: ApiError):
        return answer(request, exc.status, exc.message, exc.problems, exc.headers)

    @api.exception_handler(NinjaValidationError)
    def _validation(request: HttpRequest, exc: NinjaValidationError):
        problems = []
        for err in exc.errors:
            loc = [str(p) for p in err.get("loc", ()) if p not in _WHERE]
            problems.append({"field": ".".join(loc) or None, "message": err.get("msg", "")})
        return answer(request, 422, "The request does not match the schema.", problems)

    @api.exception_handler(AuthenticationError)
    def _unauthenticated(request: HttpRequest, exc):
        return answer(
            request,
            401,
            "A valid bearer token is required (Authorization: Bearer ocs_...).",
            headers={"WWW-Authenticate": "Bearer"},
        )

    @api.exception_handler(Http404)
    def _not_found(request: HttpRequest, exc):
        return answer(request, 404, "Not found.")

    @api.exception_handler(HttpError)
    def _http_error(request: HttpRequest, exc: HttpError):
        return answer(request, exc.status_code, str(exc))

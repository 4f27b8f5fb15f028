"""Text the console cannot store is refused at the door of the API.

PostgreSQL text cannot hold a NUL character; a NUL in a version, a slug or a name would
otherwise reach a query and fail there as a server error (schemathesis found it). Raw
uploads (zips, image archives) are bytes and may hold anything, so only text is checked:
the path, the query, a JSON body and the text fields of a form.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from django.http import HttpRequest, HttpResponse

from opsconsole.api.errors import error_response

PREFIX = "/api/"


def _has_nul(request: HttpRequest) -> str:
    if b"\x00" in unquote_to_bytes(request.get_full_path()):
        return "the URL"
    content_type = request.content_type or ""
    if content_type == "application/json" and (
        b"\x00" in request.body or b"\\u0000" in request.body.lower()
    ):
        return "the JSON body"
    if content_type.startswith("multipart/") or content_type.endswith("urlencoded"):
        for name, values in request.POST.lists():
            if "\x00" in name or any("\x00" in v for v in values):
                return f"the field {name.strip(chr(0))}"
    return ""


class NulTextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(PREFIX):
            where = _has_nul(request)
            if where:
                return error_response(
                    400, f"{where} holds a NUL character (\\u0000), which the console cannot store."
                )
        return self.get_response(request)

"""Error pages in the console's layout, with its navigation and a way back."""

import logging

from django.http import HttpResponseServerError, JsonResponse
from django.shortcuts import render

from opsconsole.api.errors import error_response

logger = logging.getLogger(__name__)


def forbidden(request, exception=None):
    return render(
        request,
        "core/error.html",
        {"code": 403, "message": str(exception or "You do not have permission to do this.")},
        status=403,
    )


def _api(request, status: int, message: str) -> JsonResponse | None:
    """Under /api/ an error is JSON in the API's shape, never an HTML page."""
    if not request.path.startswith("/api/"):
        return None
    return error_response(status, message)


def not_found(request, exception=None):
    api = _api(request, 404, "Not found.")
    if api is not None:
        return api
    return render(
        request, "core/error.html", {"code": 404, "message": "There is nothing here."}, status=404
    )


def server_error(request):
    api = _api(request, 500, "Something went wrong on our side; it has been logged.")
    if api is not None:
        return api
    try:
        return render(
            request,
            "core/error.html",
            {
                "code": 500,
                "message": "Something went wrong on our side; it has been logged. Try again, "
                "or go back to where you were.",
            },
            status=500,
        )
    except Exception:  # noqa: BLE001 - the layout needs the database; this page must not fail
        logger.exception("The error page itself failed; answering the plain one")
        return HttpResponseServerError(
            "<!doctype html><title>Server error · opsconsole</title><h1>Server error (500)</h1>"
            '<p>Something went wrong on our side. <a href="/">Back to the console</a></p>'
        )

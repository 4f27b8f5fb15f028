from django.db import OperationalError, connection
from django.db.utils import InterfaceError
from django.http import HttpResponse
from django.template.loader import render_to_string


class DatabaseUnavailableMiddleware:
    """When the console's own database is gone, answer 503 with a plain page, not a
    traceback. /healthz handles its own errors and says which dependency failed."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, OperationalError | InterfaceError):
            # Drop the broken connection so the next request reconnects.
            connection.close_if_unusable_or_obsolete()
            html = render_to_string(
                "core/unavailable.html",
                {"what": "database", "error": str(exception).strip().splitlines()[0][:300]},
            )
            return HttpResponse(html, status=503)
        return None

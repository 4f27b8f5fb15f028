"""The one place a webhook leaves the console: a POST with a short timeout, no redirects.

A redirect is not followed (to another host it would send the signed body somewhere the
admin never named; to the same host it hides a stale URL), so a 3xx is a failed attempt
that says where it pointed. Certificates are verified (Python's default context).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

USER_AGENT = "opsconsole-webhooks/1"
_EXCERPT = 200


class SendError(Exception):
    """An attempt that did not deliver. ``status`` is the HTTP status when one came back."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class Answer:
    status: int


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: PLR0913
        return None  # urllib then raises HTTPError with the 3xx


_opener = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout_s: float) -> Answer:
    """POST ``body``; a 2xx answer returns, anything else raises SendError."""
    if not url.lower().startswith(("https://", "http://")):
        raise SendError("only http(s) URLs are sent to")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked just above
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
    )
    try:
        with _opener.open(request, timeout=timeout_s) as response:
            return Answer(status=response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
        if 300 <= status < 400:
            where = exc.headers.get("Location", "?")
            raise SendError(
                f"answered {status} to {where}: redirects are not followed, "
                "give the endpoint its final URL",
                status=status,
            ) from None
        raise SendError(f"answered {status}: {_excerpt(exc)}", status=status) from None
    except TimeoutError:
        raise SendError(f"no answer within {timeout_s:g} s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise SendError(f"no answer within {timeout_s:g} s") from None
        raise SendError(f"could not connect: {reason}") from None
    except (OSError, ValueError) as exc:
        raise SendError(f"could not send: {exc}") from None


def _excerpt(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read(_EXCERPT + 1).decode("utf-8", "replace").strip()
    except OSError:
        return "(no body)"
    return (text[:_EXCERPT] + "…" if len(text) > _EXCERPT else text) or "(no body)"

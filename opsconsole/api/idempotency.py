"""``Idempotency-Key``: a change sent twice with the same key (a CI retry after a timeout)
is done once; the second request gets the first one's answer.

A middleware, so every changing endpoint gets it without a decorator to forget. The
record is claimed (inserted) before the endpoint runs: a concurrent duplicate finds the
claim and gets 409 instead of running alongside. A 5xx answer is not kept, so the client
may retry it; anything else is replayed for a day.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from opsconsole.api.errors import error_response
from opsconsole.api.models import IdempotencyRecord

PREFIX = "/api/v1/"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
KEEP = timedelta(hours=24)


def _error(status: int, message: str) -> HttpResponse:
    return error_response(status, message, field="Idempotency-Key")


class IdempotencyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.headers.get("Idempotency-Key", "").strip()
        auth = request.headers.get("Authorization", "")
        if not key or request.method not in UNSAFE or not request.path.startswith(PREFIX):
            return self.get_response(request)
        if len(key) > 255:
            return _error(400, "Idempotency-Key: at most 255 characters.")
        if not auth.startswith("Bearer "):
            return self.get_response(request)  # answered 401 by the API
        token_sha = hashlib.sha256(auth[7:].strip().encode()).hexdigest()
        body_sha = hashlib.sha256(request.body).hexdigest()
        IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - KEEP).delete()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    token_sha256=token_sha,
                    key=key,
                    method=request.method,
                    path=request.path,
                    request_sha256=body_sha,
                )
        except IntegrityError:
            return self._replay(token_sha, key, request, body_sha)
        response = self.get_response(request)
        if response.status_code >= 500 or getattr(response, "streaming", False):
            record.delete()
            return response
        record.status_code = response.status_code
        record.response_body = response.content
        record.content_type = response.get("Content-Type", "")
        record.save(update_fields=["status_code", "response_body", "content_type"])
        return response

    def _replay(self, token_sha: str, key: str, request: HttpRequest, body_sha: str):
        first = IdempotencyRecord.objects.filter(token_sha256=token_sha, key=key).first()
        if first is None:  # deleted between the insert and now: a 5xx, try again
            return _error(409, "The first request with this key failed; send it again.")
        if (first.method, first.path, first.request_sha256) != (
            request.method,
            request.path,
            body_sha,
        ):
            return _error(
                422,
                "This Idempotency-Key was used for another request "
                f"({first.method} {first.path}); use a new key for a new request.",
            )
        if first.status_code is None:
            return _error(409, "The first request with this key is still being answered.")
        response = HttpResponse(
            bytes(first.response_body), status=first.status_code, content_type=first.content_type
        )
        response["Idempotent-Replayed"] = "true"
        return response

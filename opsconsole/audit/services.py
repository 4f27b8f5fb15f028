from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest

from opsconsole.audit.models import AuditEvent
from opsconsole.core.proxies import client_address

# Keys whose values never go into the audit log, whatever a caller passes.
_REDACTED_KEYS = {"password", "secret", "secret_value", "token", "secrets"}


def client_ip(request: HttpRequest) -> str | None:
    # Behind a proxy REMOTE_ADDR is the proxy: opsconsole/core/proxies.py reads the client's
    # address from X-Forwarded-For when, and only when, a trusted proxy sent the request.
    return client_address(request)


def _clean(details: dict[str, Any]) -> dict[str, Any]:
    return {k: ("[redacted]" if k.lower() in _REDACTED_KEYS else v) for k, v in details.items()}


def audit_record(
    *,
    request: HttpRequest | None,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    actor=None,
    actor_name: str = "",
    **details: Any,
) -> AuditEvent:
    """Record one action. Every mutating view calls this (and the API too)."""
    user = actor if actor is not None else getattr(request, "user", None)
    if user is not None and not user.is_authenticated:
        user = None
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)[:200]
    # A request made with an API token says so on every record it causes, including the
    # ones services write (opsconsole.api.auth sets it).
    details = {**getattr(request, "audit_context", {}), **details}
    return AuditEvent.objects.create(
        actor=user,
        # actor_name without a user: who it claims to be (a failed login), else "system".
        actor_name=user.get_username() if user else (actor_name[:150] or "system"),
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        ip_address=client_ip(request) if request is not None else None,
        details=_clean(details),
    )

"""Every failed login goes into the audit log, with the address it came from.

django-axes counts the same failures (and locks out); its handler runs first, since its
app comes first in INSTALLED_APPS, so ``request.axes_locked_out`` says whether this
attempt was refused because of an earlier lockout or reached it.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from opsconsole.audit.services import audit_record


@receiver(user_login_failed, dispatch_uid="opsconsole-login-failed-audit")
def login_failed_audit(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Django has already masked the password in `credentials`; only the username is kept.
    username = str(credentials.get("username") or "")[:150]
    audit_record(
        request=request,
        action="login.failed",
        object_type="accounts.user",
        object_repr=username,
        actor_name=username or "anonymous",
        locked_out=bool(getattr(request, "axes_locked_out", False)),
    )

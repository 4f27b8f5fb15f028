"""Secret values held between two submits of one form, never in a page or the console's DB.

A form shown again (an error, or the plan before onboarding) leaves its secret inputs empty:
a value sent back to the browser lands in its history, its cache and any screenshot. What
the user typed waits here instead, for HOLD_SECONDS, encrypted with a key derived from
SECRET_KEY (a Redis dump on disk shows nothing), under the user and the form's random token,
and the next submit of the same form takes it when the secret input is left empty. When the
cache cannot keep them, the form says so and asks for the values again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import uuid

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.cache import cache
from django.http import QueryDict

logger = logging.getLogger(__name__)

HOLD_SECONDS = 30 * 60
# The forms put a uuid4 hex in their form_token; scripts may choose their own.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")


def new_form_token() -> str:
    return uuid.uuid4().hex


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"opsconsole.secret_hold:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _key(user_id: int, token: str, field: str) -> str | None:
    if not TOKEN_RE.match(token or ""):
        return None
    return f"secret-hold:{user_id}:{field}:{token}"


def secret_hold(*, user_id: int, token: str, field: str, values: dict[str, str]) -> bool:
    """Keep ``values`` for the next submit of this form. False: they could not be kept."""
    key = _key(user_id, token, field)
    if key is None:
        return False
    sealed = _fernet().encrypt(json.dumps(values).encode()).decode()
    try:
        cache.set(key, sealed, timeout=HOLD_SECONDS)
    except Exception:  # noqa: BLE001 - the form then asks for the values again
        logger.warning("could not hold the %s values of a form", field, exc_info=True)
        return False
    return True


def secret_held(*, user_id: int, token: str, field: str) -> dict[str, str]:
    """What this user's form holds (empty: nothing, expired, or unreadable)."""
    key = _key(user_id, token, field)
    if key is None:
        return {}
    try:
        sealed = cache.get(key)
    except Exception:  # noqa: BLE001
        logger.warning("could not read the held %s values of a form", field, exc_info=True)
        return {}
    if not sealed:
        return {}
    try:
        return json.loads(_fernet().decrypt(sealed.encode(), ttl=HOLD_SECONDS))
    except (InvalidToken, ValueError):
        return {}  # SECRET_KEY changed, or the entry is older than it should be


def secret_release(*, user_id: int, token: str, field: str) -> None:
    """Forget the held values (the form did what it was for)."""
    key = _key(user_id, token, field)
    if key is None:
        return
    try:
        cache.delete(key)
    except Exception:  # noqa: BLE001 - it expires on its own
        logger.warning("could not forget the held %s values of a form", field, exc_info=True)


def form_secrets_keep(form, *, user_id: int, field: str = "secret_env_text") -> None:
    """After a submit that is shown again: hold the form's secret values for its next
    submit and say on the field what was kept (or that they must be entered again)."""
    token = form.data.get("form_token", "")
    if field in form.errors:
        secret_release(user_id=user_id, token=token, field=field)
        _say(form, field, "Nothing was kept: enter the secret values again.")
        return
    values = (getattr(form, "cleaned_data", None) or {}).get(field) or {}
    if not values:
        return
    if not secret_hold(user_id=user_id, token=token, field=field, values=values):
        _say(
            form,
            field,
            "The secret values could not be kept (they are never sent back to the browser): "
            "enter them again.",
        )
        return
    count = len(values)
    _say(
        form,
        field,
        f"Kept: {count} secret value{'s' if count != 1 else ''} ({', '.join(sorted(values))}), "
        f"for {HOLD_SECONDS // 60} minutes; leave empty to keep them, or enter them all "
        "again to replace them.",
    )


def _say(form, field: str, text: str) -> None:
    # The bound field copies its help text when first made (validation made it already).
    form.fields[field].help_text = text
    form[field].help_text = text


def form_data_and_held(request, field: str = "secret_env_text") -> tuple[QueryDict, dict[str, str]]:
    """The submitted data, with a form token it may hold values under (a script that
    posts none gets a new one), and what an earlier submit of the same form holds."""
    data = request.POST.copy()
    if not data.get("form_token"):
        data["form_token"] = new_form_token()
    held = secret_held(user_id=request.user.pk, token=data["form_token"], field=field)
    return data, held


def form_secrets_forget(request, form, field: str = "secret_env_text") -> None:
    secret_release(user_id=request.user.pk, token=form.data.get("form_token", ""), field=field)

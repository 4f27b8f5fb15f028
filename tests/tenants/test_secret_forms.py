"""Secret values are never sent back to the browser: a form shown again (the plan, an error)
leaves its secret input empty, says what it kept, and really keeps it for the next submit
(held server-side, encrypted, per user and form token); such pages are no-store."""

from __future__ import annotations

import re
import uuid

import pytest
from django.core.cache import cache
from django.urls import reverse

from opsconsole.aws import secrets
from tenants import secret_hold
from tenants.forms import TenantConfigForm
from tenants.models import Isolation, Tenant, TenantStatus

from .conftest import make_tenant
from .test_onboarding_views import VALID

SECRET = "sk_live_" + "q7Zr2" * 4  # noqa: S105 - a test value, looked for in every page


@pytest.fixture(autouse=True)
def own_cache(settings):
    """A cache key prefix of the test's own (never cache.clear(): Redis is the broker's)."""
    caches = dict(settings.CACHES)
    caches["default"] = {**caches["default"], "KEY_PREFIX": f"test-hold-{uuid.uuid4().hex[:8]}"}
    settings.CACHES = caches


@pytest.fixture
def admin(client_for, admin_user):
    return client_for(admin_user)


def _onboard(client, **changes):
    token = changes.pop("form_token", "0" * 32)
    return client.post(reverse("tenants:onboard"), {**VALID, "form_token": token, **changes})


def _as_posted(form) -> dict:
    """What a browser posts for the form as shown (its initial values)."""
    data = {}
    for field in form:
        value = field.value()
        if value is None or value is False:
            continue
        data[field.name] = "on" if value is True else value
    return data


def _no_store(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


def test_the_plan_shows_no_secret_and_onboarding_keeps_it(admin, aws):
    assert _no_store(admin.get(reverse("tenants:onboard")))
    shown = _onboard(admin, action="plan", secret_env_text=f"STRIPE_KEY={SECRET}")
    body = shown.content.decode()
    assert shown.status_code == 200 and "The plan" in body and "opsconsole-acme" in body
    assert SECRET not in body
    assert "Kept: 1 secret value (STRIPE_KEY), for 30 minutes; leave empty to keep them" in body
    assert _no_store(shown)
    # Onboard with the input left empty (as the browser sends it back): the value is used.
    created = _onboard(admin, action="create", secret_env_text="")
    assert created.status_code == 302
    assert Tenant.objects.get().secret_env_names == ["STRIPE_KEY"]
    stored = secrets.get_secret_json(secret_id="opsconsole/tenants/acme/env")
    assert stored == {"STRIPE_KEY": SECRET}
    # Done: the held values are forgotten.
    assert (
        secret_hold.secret_held(
            user_id=Tenant.objects.get().created_by_id, token="0" * 32, field="secret_env_text"
        )
        == {}
    )


def test_an_error_keeps_the_secrets_and_shows_none(admin, aws):
    shown = _onboard(
        admin, action="plan", slug="Not A Slug", secret_env_text=f"A_KEY={SECRET}\nB_KEY=two"
    )
    body = shown.content.decode()
    assert 'class="error"' in body and SECRET not in body and "B_KEY=two" not in body
    assert "Kept: 2 secret values (A_KEY, B_KEY)" in body
    # The corrected form, its secret input empty: onboarded with both values.
    assert _onboard(admin, action="create", secret_env_text="").status_code == 302
    assert secrets.get_secret_json(secret_id="opsconsole/tenants/acme/env") == {
        "A_KEY": SECRET,
        "B_KEY": "two",
    }


def test_new_values_replace_the_held_ones(admin, aws):
    _onboard(admin, action="plan", secret_env_text=f"OLD_KEY={SECRET}")
    assert _onboard(admin, action="create", secret_env_text="NEW_KEY=fresh").status_code == 302
    assert secrets.get_secret_json(secret_id="opsconsole/tenants/acme/env") == {"NEW_KEY": "fresh"}


def test_unreadable_secret_lines_are_not_kept_and_it_says_so(admin):
    body = _onboard(admin, action="plan", secret_env_text=f"no equals sign {SECRET}")
    text = body.content.decode()
    assert "expected NAME=value" in text and SECRET not in text
    assert "Nothing was kept: enter the secret values again." in text


def test_held_values_are_encrypted_and_belong_to_one_user(admin, admin_user, aws):
    from opsconsole.accounts.models import Role, User

    _onboard(admin, action="plan", secret_env_text=f"STRIPE_KEY={SECRET}")
    raw = cache.get(f"secret-hold:{admin_user.pk}:secret_env_text:{'0' * 32}")
    assert raw and SECRET not in raw
    # Another admin who learns the token gets nothing of it.
    other = User.objects.create_user(username="bo", password="x" * 20, role=Role.ADMIN)
    assert secret_hold.secret_held(user_id=other.pk, token="0" * 32, field="secret_env_text") == {}


def test_a_cache_that_cannot_hold_them_asks_for_them_again(admin, monkeypatch):
    class Down:
        def set(self, *args, **kwargs):
            raise OSError("Redis is down")

    monkeypatch.setattr(secret_hold, "cache", Down())
    text = _onboard(admin, action="plan", secret_env_text=f"STRIPE_KEY={SECRET}").content.decode()
    assert SECRET not in text
    assert "could not be kept (they are never sent back to the browser): enter them again" in text


def test_edit_form_keeps_new_secret_values_across_an_error(admin, aws, monkeypatch):
    tenant = make_tenant("acme", status=TenantStatus.ACTIVE, isolation=Isolation.SHARED)
    written: list[dict] = []
    from tenants import services

    monkeypatch.setattr(
        services, "write_env_secret", lambda tenant, set_values, remove: written.append(set_values)
    )
    url = reverse("tenants:edit", args=[tenant.slug])
    page = admin.get(url)
    assert _no_store(page) and 'name="form_token"' in page.content.decode()
    data = {
        **_as_posted(TenantConfigForm(instance=tenant)),
        "form_token": "1" * 32,
        "lambda_memory_mb": "64",  # an error
        "secret_env_text": f"STRIPE_KEY={SECRET}",
    }
    shown = admin.post(url, data)
    body = shown.content.decode()
    assert shown.status_code == 200 and "128 to 10,240 MB" in body
    assert SECRET not in body and "Kept: 1 secret value (STRIPE_KEY)" in body
    assert _no_store(shown)
    saved = admin.post(url, {**data, "lambda_memory_mb": "256", "secret_env_text": ""})
    assert saved.status_code == 302, re.findall(r'class="error">(.*?)</', saved.content.decode())
    assert written == [{"STRIPE_KEY": SECRET}]
    tenant.refresh_from_db()
    assert tenant.secret_env_names == ["STRIPE_KEY"]
    from opsconsole.audit.models import AuditEvent

    details = AuditEvent.objects.get(action="tenant.configure").details
    assert details["secrets_set"] == ["STRIPE_KEY"] and "form_token" not in details["changed"]
    assert SECRET not in str(details)

"""API tokens: shown once, stored hashed, role no higher than the owner's, expiring,
revocable in the browser and by command, rate limited, audited."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from deployments.models import ApiToken
from opsconsole.accounts.models import Role
from opsconsole.api.tokens import TokenRefused, api_token_create, effective_role
from opsconsole.audit.models import AuditEvent

RELEASES = "/api/v1/releases/"


def bearer(raw: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_stored_as_a_hash_and_expiring(operator_user):
    token, raw = api_token_create(user=operator_user, name="ci")
    assert raw.startswith(token.prefix) and raw not in (token.key_sha256, token.prefix)
    assert not ApiToken.objects.filter(key_sha256=raw).exists()
    assert timedelta(days=89) < token.expires_at - timezone.now() <= timedelta(days=90)


def test_a_token_never_outranks_its_owner(operator_user, admin_user):
    with pytest.raises(TokenRefused, match="more power than its owner"):
        api_token_create(user=operator_user, name="ci", role=Role.ADMIN)
    token, _ = api_token_create(user=admin_user, name="ci", role=Role.VIEWER)
    assert effective_role(token) == Role.VIEWER
    # Demoting the owner demotes the token.
    token, _ = api_token_create(user=admin_user, name="ci2", role=Role.ADMIN)
    admin_user.role = Role.VIEWER
    admin_user.save()
    token.refresh_from_db()
    assert effective_role(token) == Role.VIEWER


def test_a_viewer_token_of_an_admin_cannot_change_anything(client, admin_user):
    _, raw = api_token_create(user=admin_user, name="read-only", role=Role.VIEWER)
    assert client.get(RELEASES, **bearer(raw)).status_code == 200
    response = client.post(
        RELEASES, {"version": "v1", "image": "app:1"}, "application/json", **bearer(raw)
    )
    assert response.status_code == 403 and "operator" in response.json()["message"]


def test_expired_and_revoked_tokens_are_refused(client, operator_user):
    token, raw = api_token_create(user=operator_user, name="ci")
    assert client.get(RELEASES, **bearer(raw)).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(RELEASES, **bearer(raw)).status_code == 401
    token, raw = api_token_create(user=operator_user, name="ci")
    call_command("api_token_revoke", token.prefix, stdout=io.StringIO())
    response = client.get(RELEASES, **bearer(raw))
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Bearer"
    assert AuditEvent.objects.filter(action="api_token.revoke", object_id=str(token.pk)).exists()


def test_rate_limit_answers_429_with_retry_after(client, operator_user, settings):
    settings.API_RATE_PER_MINUTE = 3
    _, raw = api_token_create(user=operator_user, name="ci")
    answers = [client.get(RELEASES, **bearer(raw)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 1 <= int(answers[-1]["Retry-After"]) <= 61
    assert "retry in" in answers[-1].json()["message"]
    # Another token has its own window.
    _, other = api_token_create(user=operator_user, name="other")
    assert client.get(RELEASES, **bearer(other)).status_code == 200


def test_last_used_is_recorded(client, operator_user):
    token, raw = api_token_create(user=operator_user, name="ci")
    assert token.last_used_at is None
    client.get(RELEASES, **bearer(raw))
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_the_command_prints_the_token_once_and_audits(operator_user):
    out = io.StringIO()
    call_command("api_token_create", "otto", "--name", "deploy", "--role", "viewer", stdout=out)
    raw = out.getvalue().strip()
    token = ApiToken.objects.get(name="deploy")
    assert raw.startswith("ocs_") and token.role == "viewer" and raw not in token.key_sha256
    assert AuditEvent.objects.filter(action="api_token.create", object_id=str(token.pk)).exists()
    with pytest.raises(CommandError, match="more power"):
        call_command("api_token_create", "otto", "--role", "admin", stdout=io.StringIO())


def test_browser_shows_the_token_once_and_revokes_it(client_for, operator_user):
    client = client_for(operator_user)
    page = client.post("/account/tokens/", {"name": "ci", "role": "operator", "expires_days": "30"})
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    token = ApiToken.objects.get(user=operator_user)
    raw = page.context["raw"]
    assert raw.startswith(token.prefix) and raw in page.content.decode()
    # Shown once: the list never shows it again.
    again = client.get("/account/tokens/")
    assert raw not in again.content.decode() and token.prefix in again.content.decode()
    assert AuditEvent.objects.filter(action="api_token.create").exists()
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_a_member_cannot_see_or_revoke_anothers_token(client_for, operator_user, viewer_user):
    token, _ = api_token_create(user=operator_user, name="ci")
    client = client_for(viewer_user)
    assert token.prefix not in client.get("/account/tokens/").content.decode()
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_the_form_offers_no_role_above_the_users(client_for, viewer_user):
    page = client_for(viewer_user).post(
        "/account/tokens/", {"name": "ci", "role": "admin", "expires_days": "30"}
    )
    assert page.status_code == 200 and not ApiToken.objects.exists()
    assert "role" in page.context["form"].errors

"""Logins (issue 13): every failure is audited with the client's address, repeated failures
lock that username out from that address for a while (django-axes), passwords are
validated, and X-Forwarded-For counts only when a trusted proxy sent it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from opsconsole.audit.models import AuditEvent
from opsconsole.core.proxies import client_address
from tests.conftest import PASSWORD

CLIENT = "203.0.113.7"  # the browser, as the load balancer saw it
PROXY = "10.0.3.12"  # the load balancer, inside TRUSTED_PROXIES


@pytest.fixture(autouse=True)
def fast_hashes(settings):
    # Every login here checks a password: PBKDF2's real cost would take seconds each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def behind_proxy(settings):
    settings.USE_X_FORWARDED_FOR = True
    settings.TRUSTED_PROXIES = ["10.0.0.0/16"]
    settings.TRUSTED_PROXY_COUNT = 1
    return settings


def _request(remote: str, forwarded: str | None = None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **extra)


def test_forwarded_for_is_read_only_from_a_trusted_proxy(behind_proxy):
    # The load balancer appends who it talked to; what the client wrote stays on the left.
    assert client_address(_request(PROXY, f"1.2.3.4, {CLIENT}")) == CLIENT
    # A spoofed header straight from the internet is ignored.
    assert client_address(_request(CLIENT, "10.0.0.1")) == CLIENT
    # Garbage, or fewer hops than proxies: the peer, not a guess.
    assert client_address(_request(PROXY, "not-an-address")) == PROXY
    assert client_address(_request(PROXY, "")) == PROXY
    behind_proxy.TRUSTED_PROXY_COUNT = 2  # e.g. CloudFront in front of the load balancer
    assert client_address(_request(PROXY, f"1.2.3.4, {CLIENT}, 10.0.9.9")) == CLIENT
    assert client_address(_request(PROXY, CLIENT)) == PROXY


def test_forwarded_for_is_ignored_unless_turned_on(settings):
    settings.USE_X_FORWARDED_FOR = False
    settings.TRUSTED_PROXIES = ["10.0.0.0/16"]
    assert client_address(_request(PROXY, CLIENT)) == PROXY


def _login(client, username: str, password: str, **extra):
    return client.post(reverse("login"), {"username": username, "password": password}, **extra)


def test_a_failed_login_is_audited_with_the_client_address(client, admin_user, behind_proxy):
    response = _login(
        client, "ada", "wrong", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"6.6.6.6, {CLIENT}"
    )
    assert response.status_code == 200  # the form again, with its error
    event = AuditEvent.objects.get(action="login.failed")
    assert (event.ip_address, event.actor, event.actor_name) == (CLIENT, None, "ada")
    assert event.details == {"locked_out": False}
    assert "wrong" not in str(AuditEvent.objects.values_list())

    # Spoofed from outside: recorded as the peer's address.
    _login(client, "ada", "wrong", REMOTE_ADDR=CLIENT, HTTP_X_FORWARDED_FOR="10.0.0.1")
    latest = AuditEvent.objects.filter(action="login.failed").first()
    assert latest.ip_address == CLIENT


def test_repeated_failures_lock_that_username_out_from_that_address(
    client, admin_user, viewer_user, settings
):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert _login(client, "ada", "wrong", REMOTE_ADDR=CLIENT).status_code == 200
    locked = _login(client, "ada", "wrong", REMOTE_ADDR=CLIENT)
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed logins" in page and "15 minutes" in page
    # Now even the right password is refused from there...
    assert _login(client, "ada", PASSWORD, REMOTE_ADDR=CLIENT).status_code == 429
    assert "_auth_user_id" not in client.session
    events = AuditEvent.objects.filter(action="login.failed")
    assert events.count() == limit + 1
    assert [e.details["locked_out"] for e in events.order_by("id")][-2:] == [True, True]
    # ...but not from another address, nor for another user from the same one.
    assert _login(client, "ada", PASSWORD, REMOTE_ADDR="198.51.100.1").status_code == 302
    client.logout()
    assert _login(client, "vera", PASSWORD, REMOTE_ADDR=CLIENT).status_code == 302
    client.logout()

    # After the cool-off the user may try again.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert _login(client, "ada", PASSWORD, REMOTE_ADDR=CLIENT).status_code == 302


def test_the_lockout_counts_the_client_behind_the_proxy_not_the_proxy(
    client, admin_user, behind_proxy
):
    for _ in range(behind_proxy.AXES_FAILURE_LIMIT):
        _login(client, "ada", "wrong", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=CLIENT)
    assert AccessAttempt.objects.get().ip_address == CLIENT
    # Another client through the same load balancer is not locked out.
    ok = _login(client, "ada", PASSWORD, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.2")
    assert ok.status_code == 302


@pytest.mark.parametrize(
    ("password", "complaint"),
    [
        ("short-pw", "too short"),
        ("48213957204816", "entirely numeric"),
        ("newbie-newbie", "too similar to the username"),
        ("password1234", "too common"),
    ],
)
def test_new_passwords_are_validated(client_for, admin_user, password, complaint):
    response = client_for(admin_user).post(
        reverse("users:create"),
        {"username": "newbie-newbie", "email": "", "role": "viewer", "password": password},
    )
    assert response.status_code == 200
    assert complaint in response.content.decode()

"""The webhook pages: admins only (an outsider gets 404, a viewer or operator 403, as on the
users pages), the secret shown once, audit of every change, confirmation before delete."""

from __future__ import annotations

import pytest
from django.urls import reverse

from opsconsole.accounts.models import Role, User
from opsconsole.audit.models import AuditEvent
from opsconsole.aws import secrets as aws_secrets
from opsconsole.webhooks import events
from opsconsole.webhooks.models import Delivery, DeliveryStatus, Endpoint

RECEIVER = "http://127.0.0.1:9/hook"  # never called: sends are captured


def member(role: str) -> User:
    # No password: these tests log in with force_login, and hashing costs more than them.
    return User.objects.create(username=f"wh-{role or 'outsider'}", role=role)


@pytest.fixture
def admin(db, client):
    user = member(Role.ADMIN)
    client.force_login(user)
    return client


@pytest.fixture
def endpoint(db):
    return Endpoint.objects.create(
        name="relay",
        url=RECEIVER,
        events=[events.ROLLOUT_STARTED],
        secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
        secret_hint="whsec_abcd",
    )


@pytest.fixture
def delivery(endpoint):
    return Delivery.objects.create(
        endpoint=endpoint,
        event=events.ROLLOUT_STARTED,
        payload={"rollout": 7, "release": "2026.12.0"},
        status=DeliveryStatus.FAILED,
        attempts=6,
        last_status_code=500,
        last_error="answered 500: boom",
    )


def pages(endpoint, delivery) -> list[tuple[str, str]]:
    e, d = endpoint.pk, delivery.pk
    return [
        ("get", reverse("webhooks:list")),
        ("get", reverse("webhooks:create")),
        ("get", reverse("webhooks:detail", args=[e])),
        ("get", reverse("webhooks:edit", args=[e])),
        ("get", reverse("webhooks:delivery", args=[d])),
        ("post", reverse("webhooks:create")),
        ("post", reverse("webhooks:edit", args=[e])),
        ("post", reverse("webhooks:delete", args=[e])),
        ("post", reverse("webhooks:test", args=[e])),
        ("post", reverse("webhooks:retry", args=[d])),
    ]


@pytest.mark.parametrize(("role", "status"), [("", 404), (Role.VIEWER, 403), (Role.OPERATOR, 403)])
def test_only_admins_reach_the_webhook_pages(client, endpoint, delivery, role, status):
    client.force_login(member(role))
    for method, url in pages(endpoint, delivery):
        response = getattr(client, method)(url, {"confirmed": "yes"} if method == "post" else {})
        assert response.status_code == status, (method, url)
    assert Endpoint.objects.count() == 1 and not Delivery.objects.exclude(pk=delivery.pk).exists()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED


def test_anonymous_goes_to_the_login_page(client, endpoint):
    response = client.get(reverse("webhooks:detail", args=[endpoint.pk]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_nav_links_webhooks_for_admins_only(client, db):
    client.force_login(member(Role.OPERATOR))
    assert reverse("webhooks:list") not in client.get(reverse("audit")).text
    client.force_login(member(Role.ADMIN))
    assert reverse("webhooks:list") in client.get(reverse("audit")).text


def test_empty_states_explain(admin, endpoint):
    Endpoint.objects.all().delete()
    assert "No webhook yet" in admin.get(reverse("webhooks:list")).text
    fresh = Endpoint.objects.create(name="n", url=RECEIVER, events=["rollout.started"])
    assert "Nothing sent yet" in admin.get(reverse("webhooks:detail", args=[fresh.pk])).text


def test_create_shows_the_secret_once_and_audits_without_it(admin, aws):
    response = admin.post(
        reverse("webhooks:create"),
        {
            "name": "chat",
            "url": RECEIVER,
            "events": ["rollout.halted", "tenant.failed"],
            "active": "on",
        },
    )
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    endpoint = Endpoint.objects.get()
    secret = aws_secrets.get_secret_json(secret_id=endpoint.secret_arn)["signing_secret"]
    assert secret in response.text
    assert endpoint.events == ["rollout.halted", "tenant.failed"]
    # Never again: not on its page, not in the list, not in the audit log.
    for url in (reverse("webhooks:detail", args=[endpoint.pk]), reverse("webhooks:list")):
        assert secret not in admin.get(url).text
    event = AuditEvent.objects.get(action="webhook.create")
    assert event.object_id == str(endpoint.pk) and secret not in str(event.details)


def test_create_refuses_plain_http_elsewhere_and_unknown_events(admin, settings):
    settings.WEBHOOK_HTTP_HOSTS = ["127.0.0.1"]
    response = admin.post(
        reverse("webhooks:create"),
        {"name": "x", "url": "http://hooks.example.com/x", "events": ["nope"]},
    )
    assert response.status_code == 200
    assert "Use an https:// URL (plain http only for 127.0.0.1)" in response.text
    assert "nope is not one of the available choices" in response.text
    assert not Endpoint.objects.exists()


def test_edit_changes_events_and_active_and_audits_the_difference(admin, endpoint):
    response = admin.post(
        reverse("webhooks:edit", args=[endpoint.pk]),
        {"name": "relay", "url": RECEIVER, "events": ["deployment.failed"]},
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.events == ["deployment.failed"] and endpoint.active is False
    event = AuditEvent.objects.get(action="webhook.update")
    assert event.details["before"] == {"events": ["rollout.started"], "active": True}
    assert event.details["after"] == {"events": ["deployment.failed"], "active": False}


def test_delete_asks_first_then_deletes_and_schedules_the_secret(
    admin, aws, django_capture_on_commit_callbacks
):
    admin.post(
        reverse("webhooks:create"), {"name": "gone", "url": RECEIVER, "events": ["tenant.failed"]}
    )
    endpoint = Endpoint.objects.get()
    url = reverse("webhooks:delete", args=[endpoint.pk])
    asked = admin.post(url)
    assert asked.status_code == 200 and "Delete the webhook gone?" in asked.text
    assert Endpoint.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(url, {"confirmed": "yes"})
    assert response.status_code == 302 and not Endpoint.objects.exists()
    assert aws_secrets.describe_secret(secret_id=endpoint.secret_arn).get("DeletedDate")
    assert AuditEvent.objects.filter(action="webhook.delete", object_id=str(endpoint.pk)).exists()


def test_detail_has_the_confirm_dialog_test_button_and_the_delivery_log(admin, endpoint, delivery):
    text = admin.get(reverse("webhooks:detail", args=[endpoint.pk])).text
    assert 'data-confirm="confirm-delete"' in text and '<dialog id="confirm-delete"' in text
    assert "Send test event" in text
    assert "answered 500: boom" in text and "6 of 6" in text and "Retry now" in text
    failed_only = admin.get(reverse("webhooks:detail", args=[endpoint.pk]), {"status": "delivered"})
    assert "No delivered delivery" in failed_only.text


def test_send_test_event_and_retry_now(
    admin, endpoint, delivery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as sends:
        admin.post(reverse("webhooks:test", args=[endpoint.pk]))
        admin.post(reverse("webhooks:retry", args=[delivery.pk]))
    assert len(sends) == 2
    test = Delivery.objects.get(event=events.TEST)
    assert test.endpoint == endpoint and test.status == DeliveryStatus.PENDING
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at is not None
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"webhook.test", "webhook.retry"} <= actions


def test_an_inactive_endpoint_is_sent_nothing_from_the_buttons(admin, endpoint, delivery):
    Endpoint.objects.filter(pk=endpoint.pk).update(active=False)
    response = admin.post(reverse("webhooks:test", args=[endpoint.pk]), follow=True)
    assert "relay is inactive" in response.text
    response = admin.post(reverse("webhooks:retry", args=[delivery.pk]), follow=True)
    assert "relay is inactive" in response.text
    assert Delivery.objects.count() == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED


def test_the_delivery_page_shows_the_body_as_signed(admin, delivery):
    text = admin.get(reverse("webhooks:delivery", args=[delivery.pk])).text
    assert "&quot;release&quot;: &quot;2026.12.0&quot;" in text
    assert f"&quot;id&quot;: {delivery.pk}" in text and "answered 500: boom" in text

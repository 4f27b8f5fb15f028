"""Who is notified, as people use it: admins change (through a job, audit-logged), viewers
see, outsiders get 404; bad addresses are refused with a reason. No AWS call here."""

from __future__ import annotations

import pytest
from django.urls import reverse

from opsconsole.audit.models import AuditEvent
from opsconsole.jobs.models import Job
from tenants.models import AlarmSubscription, Tenant
from tests.tenants.conftest import make_tenant

HOOK = "https://hooks.example.com/opsconsole"


@pytest.fixture
def tenant(seeded) -> Tenant:
    # seeded: the tenant page shows its release's settings, as it does in use.
    return make_tenant("hc-views", status="active", alarm_topic="tenant")


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_admin_adds_and_removes_through_a_job_and_the_audit_log(client_for, admin_user, tenant):
    admin = client_for(admin_user)
    add = reverse("tenants:notifications_add", args=[tenant.slug])
    response = admin.post(add, {"protocol": "https", "endpoint": HOOK}, follow=True)
    assert response.status_code == 200
    row = AlarmSubscription.objects.get(tenant=tenant)
    assert row.endpoint == HOOK and row.subscription_arn == ""
    job = Job.objects.get(kind="tenant_notifications", subject_id=tenant.slug)
    assert [s.name for s in job.steps.all()] == ["alarm_topic", "alarms"]
    event = AuditEvent.objects.get(action="tenant.alarm_subscribe")
    assert event.details == {"protocol": "https", "endpoint": HOOK}
    page = response.content.decode()
    assert "Who is notified" in page and HOOK in page and "not applied yet" in page

    AlarmSubscription.objects.filter(pk=row.pk).update(subscription_arn="pending confirmation")
    assert (
        "pending confirmation"
        in admin.get(reverse("tenants:detail", args=[tenant.slug])).content.decode()
    )

    Job.objects.all().delete()  # the first job would stand in for the second (one at a time)
    remove = reverse("tenants:notifications_remove", args=[tenant.slug, row.pk])
    assert admin.post(remove).status_code == 302
    assert not AlarmSubscription.objects.filter(tenant=tenant).exists()
    assert Job.objects.filter(kind="tenant_notifications").count() == 1
    assert AuditEvent.objects.filter(action="tenant.alarm_unsubscribe").count() == 1


def test_topic_choice_is_saved_audited_and_applied(client_for, admin_user, tenant):
    admin = client_for(admin_user)
    url = reverse("tenants:notifications_topic", args=[tenant.slug])
    assert admin.post(url, {"alarm_topic": "fleet"}).status_code == 302
    tenant.refresh_from_db()
    assert tenant.alarm_topic == "fleet"
    assert Job.objects.filter(kind="tenant_notifications", subject_id=tenant.slug).exists()
    event = AuditEvent.objects.get(action="tenant.alarm_topic")
    assert event.details == {"before": "tenant", "after": "fleet"}
    response = admin.post(url, {"alarm_topic": "pager"}, follow=True)
    assert any("Unknown choice" in m for m in _messages(response))


@pytest.mark.parametrize(
    ("protocol", "endpoint", "why"),
    [
        ("https", "http://hooks.example.com/x", "starts with https://"),
        ("https", "https://user:secret@hooks.example.com/x", "No user name or password"),
        ("https", "https://", "not a valid https:// URL"),
        ("email", "oncall@", "not an email address"),
        ("email", "", "Give an email address"),
        ("sms", "+15555550100", "Unknown protocol"),
    ],
)
def test_bad_endpoints_are_refused_with_a_reason(
    client_for, admin_user, tenant, protocol, endpoint, why
):
    admin = client_for(admin_user)
    url = reverse("tenants:notifications_add", args=[tenant.slug])
    response = admin.post(url, {"protocol": protocol, "endpoint": endpoint}, follow=True)
    assert any(why in m for m in _messages(response)), _messages(response)
    assert not AlarmSubscription.objects.exists() and not Job.objects.exists()
    assert not AuditEvent.objects.exists()


def test_a_duplicate_fleet_subscriber_is_refused(client_for, admin_user, db):
    admin = client_for(admin_user)
    url = reverse("tenants:fleet_notifications_add")
    admin.post(url, {"protocol": "email", "endpoint": "sre@example.com"})
    response = admin.post(url, {"protocol": "email", "endpoint": "SRE@example.com"}, follow=True)
    assert any("already notified" in m for m in _messages(response))
    assert AlarmSubscription.objects.filter(tenant=None).count() == 1
    assert Job.objects.filter(kind="fleet_alarm_topic").count() == 1
    assert "sre@example.com" in response.content.decode()


def test_viewers_see_only_and_outsiders_get_404(
    client_for, viewer_user, operator_user, outsider_user, tenant
):
    row = AlarmSubscription.objects.create(tenant=tenant, protocol="https", endpoint=HOOK)
    fleet_row = AlarmSubscription.objects.create(tenant=None, protocol="https", endpoint=HOOK)
    writes = [
        (reverse("tenants:notifications_add", args=[tenant.slug]), {"protocol": "https"}),
        (reverse("tenants:notifications_remove", args=[tenant.slug, row.pk]), {}),
        (reverse("tenants:notifications_topic", args=[tenant.slug]), {"alarm_topic": "none"}),
        (reverse("tenants:notifications_refresh", args=[tenant.slug]), {}),
        (reverse("tenants:fleet_notifications_add"), {"protocol": "https"}),
        (reverse("tenants:fleet_notifications_remove", args=[fleet_row.pk]), {}),
        (reverse("tenants:fleet_notifications_refresh"), {}),
    ]
    for user in (viewer_user, operator_user):
        c = client_for(user)
        page = c.get(reverse("tenants:detail", args=[tenant.slug])).content.decode()
        assert "Who is notified" in page and HOOK in page
        assert (
            "Notify someone else" not in page
            and "Remove" not in page.split("Who is notified")[1].split("Resources")[0]
        )
        fleet = c.get(reverse("tenants:fleet_notifications"))
        assert fleet.status_code == 200 and HOOK in fleet.content.decode()
        for url, data in writes:
            assert c.post(url, data).status_code == 403, url
    outsider = client_for(outsider_user)
    assert outsider.get(reverse("tenants:fleet_notifications")).status_code == 404
    for url, data in writes:
        assert outsider.post(url, data).status_code == 404, url
    assert AlarmSubscription.objects.count() == 2 and not Job.objects.exists()
    assert (
        client_for(viewer_user)
        .get(reverse("tenants:list"))
        .content.decode()
        .count(reverse("tenants:fleet_notifications"))
        == 1
    )

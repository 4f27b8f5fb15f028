from django.test import RequestFactory
from django.urls import reverse

from opsconsole.audit.models import AuditEvent
from opsconsole.audit.services import audit_record


def test_audit_record_keeps_who_what_where_and_redacts_secrets(admin_user):
    request = RequestFactory().post("/x", REMOTE_ADDR="10.1.2.3")
    request.user = admin_user
    event = audit_record(
        request=request, action="tenant.update", obj=admin_user, password="hunter2", memory=512
    )
    event.refresh_from_db()
    assert (event.actor, event.actor_name, event.ip_address) == (admin_user, "ada", "10.1.2.3")
    assert event.object_type == "accounts.user" and event.object_id == str(admin_user.pk)
    assert event.details == {"password": "[redacted]", "memory": 512}


def test_mutating_views_write_the_audit_log(client_for, admin_user):
    client = client_for(admin_user)
    response = client.post(
        reverse("users:create"),
        {
            "username": "newbie",
            "email": "n@example.com",
            "role": "viewer",
            "password": "a-long-enough-password",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="user.create")
    assert event.actor == admin_user and event.object_repr == "newbie"
    assert event.details == {"role": "viewer"}
    assert "a-long-enough-password" not in str(AuditEvent.objects.values_list())


def test_audit_page_filters(client_for, viewer_user, admin_user):
    for action, actor in [
        ("tenant.create", admin_user),
        ("release.register", viewer_user),
        ("tenant.offboard", admin_user),
    ]:
        audit_record(request=None, action=action, actor=actor)
    client = client_for(viewer_user)
    page = client.get(reverse("audit"), {"action": "tenant."}).content.decode()
    assert "tenant.create" in page and "tenant.offboard" in page
    assert "release.register" not in page
    page = client.get(reverse("audit"), {"actor": "vera"}).content.decode()
    assert "release.register" in page and "tenant.create" not in page
    page = client.get(reverse("audit"), {"since": "2999-01-01"}).content.decode()
    assert "No event matches these filters" in page


def test_admin_cannot_lock_themselves_out(client_for, admin_user):
    client = client_for(admin_user)
    response = client.post(
        reverse("users:edit", args=[admin_user.pk]),
        {"email": "", "role": "viewer", "is_active": "on"},
    )
    assert response.status_code == 200
    assert b"cannot remove your own admin role" in response.content
    admin_user.refresh_from_db()
    assert admin_user.role == "admin"

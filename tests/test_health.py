import pytest
from django.db import OperationalError
from django.urls import reverse


def test_healthz_all_reachable(client_for, viewer_user, aws):
    response = client_for(viewer_user).get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "aws"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["broker"]["detail"] == "redis"


def test_healthz_broker_gone_is_503_and_says_which(client, viewer_user, aws, settings):
    from opsconsole.celery import app

    old = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        # Anonymous (a load balancer): down, and nothing about why.
        anonymous = client.get("/healthz")
        client.force_login(viewer_user)
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = old
    assert (anonymous.status_code, anonymous.json()) == (503, {"status": "down"})
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "down"
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["ok"] is True


def test_healthz_aws_gone_is_503(client_for, viewer_user, settings):
    from opsconsole.aws.clients import reset_clients

    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:1"
    reset_clients()
    try:
        body = client_for(viewer_user).get("/healthz").json()
    finally:
        reset_clients()
    assert body["checks"]["aws"]["ok"] is False
    assert "unreachable" in body["checks"]["aws"]["error"].lower()


def test_healthz_tells_an_anonymous_caller_only_up_or_down(client, outsider_user, db, aws):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    # A login without a console role is not enough for the details either.
    client.force_login(outsider_user)
    assert client.get("/healthz").json() == {"status": "ok"}


def test_healthz_answers_a_member_briefly_when_the_database_cannot_say_who_they_are(
    client_for, viewer_user, monkeypatch
):
    client = client_for(viewer_user)
    monkeypatch.setattr(
        "opsconsole.core.views.health_report", lambda: {"status": "down", "checks": {}}
    )

    def no_database(request):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("django.contrib.auth.get_user", no_database)
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (503, {"status": "down"})


# The database really unreachable: tests/test_healthz_live.py (a real server, a cut proxy).


def test_database_gone_shows_a_page_not_a_traceback(client_for, viewer_user, monkeypatch):
    from tenants import views

    client = client_for(viewer_user)

    def broken(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(views, "render", broken)
    response = client.get(reverse("tenants:list"))
    assert response.status_code == 503
    assert b"database is unreachable" in response.content
    assert b"Traceback" not in response.content


def test_broker_gone_shows_a_banner(client_for, viewer_user, monkeypatch):
    monkeypatch.setattr(
        "opsconsole.core.context_processors.broker_status_cached",
        lambda: {"ok": False, "error": "Error 111 connecting to 127.0.0.1:6379"},
    )
    page = client_for(viewer_user).get(reverse("tenants:list"))
    assert page.status_code == 200
    assert b"The job broker is unreachable" in page.content


@pytest.mark.parametrize("sandbox", [True, False])
def test_sandbox_banner_only_on_the_sandbox(client_for, viewer_user, settings, sandbox):
    settings.SANDBOX = sandbox
    page = client_for(viewer_user).get(reverse("tenants:list")).content
    assert (b"SANDBOX" in page) is sandbox

"""Outgoing webhooks: the signature, real HTTP deliveries to a receiver on 127.0.0.1,
retries and their limits, the sweep, and each event emitted by the real transition.

Secrets Manager is in-process moto (``aws``). Celery is never reached: on-commit sends
are captured, and attempts are made by calling the task or the service directly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from django.test import RequestFactory
from django.utils import timezone

from deployments.models import Deployment, DeploymentStatus, Release, Rollout, RolloutStatus
from deployments.pipeline import JOB_KIND
from deployments.rollouts import Strategy, Target, rollout_advance, rollout_cancel, rollout_start
from opsconsole.accounts.models import Role, User
from opsconsole.aws import secrets as aws_secrets
from opsconsole.jobs.models import Job, JobStatus
from opsconsole.jobs.registry import get_kind
from opsconsole.jobs.services import job_create
from opsconsole.webhooks import events, services, signing, tasks
from opsconsole.webhooks.models import Delivery, DeliveryStatus, Endpoint
from tenants.models import Tenant, TenantStatus

DOC = Path(__file__).resolve().parent.parent / "docs" / "webhooks.md"


class Receiver:
    """An HTTP server on 127.0.0.1 in a thread: answers the queued statuses in turn (then
    200) and records every request as (headers, raw body)."""

    def __init__(self, handler_class=None):
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.delay_s = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                status, headers = receiver.answers.pop(0) if receiver.answers else (200, {})
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), handler_class or Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _fresh_secret_cache():
    services._secret_cache.clear()
    yield
    services._secret_cache.clear()


def admin_request(user):
    request = RequestFactory().post("/webhooks/new/")
    request.user = user
    return request


@pytest.fixture
def admin_user(db):
    # No password: hashing one costs more than most of these tests.
    return User.objects.create(username="wh-admin", role=Role.ADMIN)


@pytest.fixture
def make_endpoint(admin_user, receiver):
    """An endpoint row whose secret the worker already holds (its in-process cache), so
    tests about sending need no Secrets Manager; ``created_endpoint`` goes through it."""

    def make(events_wanted=None):
        secret = services.new_signing_secret()
        endpoint = Endpoint.objects.create(
            name="relay",
            url=receiver.url,
            events=events_wanted or list(events.EVENTS),
            secret_arn=f"arn:aws:secretsmanager:us-east-1:123456789012:secret:t-{secret[-8:]}",
            created_by=admin_user,
        )
        services._secret_cache[endpoint.secret_arn] = (secret, time.monotonic() + 600)
        return endpoint, secret

    return make


@pytest.fixture
def created_endpoint(aws, admin_user, receiver):
    """An endpoint made as the console makes it: its secret in (in-process) moto."""
    return services.endpoint_create(
        name="relay",
        url=receiver.url,
        events=list(events.EVENTS),
        request=admin_request(admin_user),
    )


def queued(endpoint, django_capture_on_commit_callbacks) -> Delivery:
    """A test delivery for ``endpoint``, committed, its send captured (not sent)."""
    with django_capture_on_commit_callbacks(execute=False):
        return services.send_test(endpoint=endpoint, request=admin_request(endpoint.created_by))


# --- signature -------------------------------------------------------------------------


def test_the_signature_is_the_documented_hmac_and_a_wrong_secret_fails():
    body = b'{"event":"rollout.started"}'
    header = signing.signature_header("whsec_right", body, timestamp=1_700_000_000)
    t, v1 = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header).groups()
    # Computed here as docs/webhooks.md says, not with the module's own function.
    expected = hmac.new(b"whsec_right", f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert v1 == expected
    now = 1_700_000_010
    assert signing.verify("whsec_right", header, body, now=now)
    assert not signing.verify("whsec_wrong", header, body, now=now)
    assert not signing.verify("whsec_right", header, body + b" ", now=now)
    # A captured request replayed an hour later is refused.
    assert not signing.verify("whsec_right", header, body, now=now + 3600)
    assert not signing.verify("whsec_right", "garbage", body, now=now)


def test_the_secret_lives_in_secrets_manager_and_the_row_keeps_its_arn(created_endpoint):
    endpoint, secret = created_endpoint
    assert secret.startswith("whsec_") and len(secret) > 40
    assert endpoint.secret_arn.startswith("arn:aws:secretsmanager:")
    row = Endpoint.objects.filter(pk=endpoint.pk).values().get()
    assert not any(secret in str(value) for value in row.values())
    stored = aws_secrets.get_secret_json(secret_id=endpoint.secret_arn)
    assert stored == {"signing_secret": secret}


def test_plain_http_only_for_the_allowed_hosts(settings):
    settings.WEBHOOK_HTTP_HOSTS = ["127.0.0.1"]
    assert services.clean_url("http://127.0.0.1:9/x") == "http://127.0.0.1:9/x"
    assert services.clean_url("https://hooks.example.com/x") == "https://hooks.example.com/x"
    for bad in ("http://hooks.example.com/x", "ftp://127.0.0.1/x", "hooks.example.com"):
        with pytest.raises(services.EndpointError):
            services.clean_url(bad)
    settings.WEBHOOK_HTTP_HOSTS = []
    with pytest.raises(services.EndpointError, match="https"):
        services.clean_url("http://127.0.0.1:9/x")


# --- delivery to a real receiver -------------------------------------------------------


def test_a_receiver_gets_the_signed_delivery_with_its_headers(
    created_endpoint, receiver, django_capture_on_commit_callbacks
):
    # The whole way: the secret is read back from Secrets Manager to sign.
    endpoint, secret = created_endpoint
    delivery = queued(endpoint, django_capture_on_commit_callbacks)

    assert tasks.webhook_deliver(delivery.pk) == "delivered"

    [(headers, body)] = receiver.requests
    assert signing.verify(secret, headers["X-Opsconsole-Signature"], body)
    assert headers["X-Opsconsole-Event"] == "webhook.test"
    assert headers["X-Opsconsole-Delivery"] == str(delivery.pk)
    assert headers["Content-Type"] == "application/json"
    document = json.loads(body)
    assert document["id"] == delivery.pk and document["event"] == "webhook.test"
    assert document["data"]["endpoint"] == endpoint.pk
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None


def test_the_receiver_in_the_docs_accepts_a_delivery_and_refuses_a_wrong_secret(
    make_endpoint, django_capture_on_commit_callbacks, monkeypatch
):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    lines = code.strip().splitlines()
    # Short enough to read at a glance (blank lines, as ruff formats the block, aside).
    assert len([line for line in lines if line.strip()]) <= 12
    assert lines[-1].startswith("HTTPServer(")
    monkeypatch.setenv("OPSCONSOLE_WEBHOOK_SECRET", "placeholder")
    endpoint, secret = make_endpoint()
    for env_secret, outcome, status in ((secret, "delivered", 204), ("whsec_x", "retry", 401)):
        os.environ["OPSCONSOLE_WEBHOOK_SECRET"] = env_secret
        namespace: dict = {}
        exec("\n".join(lines[:-1]), namespace)  # noqa: S102 - the documented receiver
        docs_receiver = Receiver(handler_class=namespace["Hook"])
        try:
            endpoint.url = docs_receiver.url
            endpoint.save(update_fields=["url"])
            delivery = queued(endpoint, django_capture_on_commit_callbacks)
            assert services.delivery_attempt(delivery.pk).status == outcome
        finally:
            docs_receiver.close()
        delivery.refresh_from_db()
        assert delivery.last_status_code == status


def test_a_500_then_a_200_is_retried_with_backoff_and_delivered(
    make_endpoint, receiver, django_capture_on_commit_callbacks, monkeypatch
):
    endpoint, _ = make_endpoint()
    delivery = queued(endpoint, django_capture_on_commit_callbacks)
    receiver.answers = [(500, {})]
    scheduled = []
    monkeypatch.setattr(
        tasks.webhook_deliver, "apply_async", lambda args, countdown: scheduled.append(countdown)
    )

    assert tasks.webhook_deliver(delivery.pk) == "retry"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert delivery.last_status_code == 500 and "answered 500: no" in delivery.last_error
    [countdown] = scheduled
    assert 24 <= countdown <= 36  # 30 s ± 20 %
    assert abs((delivery.next_attempt_at - timezone.now()).total_seconds() - countdown) < 5
    # Not due yet: a second message for it (the sweep, a duplicate) sends nothing.
    assert tasks.webhook_deliver(delivery.pk) == "skipped"
    assert len(receiver.requests) == 1

    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert tasks.webhook_deliver(delivery.pk) == "delivered"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert delivery.last_error == ""
    assert len(receiver.requests) == 2
    # The same bytes both times: the receiver can compare and dedupe.
    assert receiver.requests[0][1] == receiver.requests[1][1]


def test_backoff_grows_and_the_last_attempt_fails_the_delivery(
    make_endpoint, receiver, django_capture_on_commit_callbacks
):
    waits = [services.backoff_s(n) for n in range(1, services.MAX_ATTEMPTS)]
    for wait, base in zip(waits, services.BACKOFF_S, strict=True):
        assert base * 0.8 <= wait <= base * 1.2
    endpoint, _ = make_endpoint()
    delivery = queued(endpoint, django_capture_on_commit_callbacks)
    Delivery.objects.filter(pk=delivery.pk).update(attempts=services.MAX_ATTEMPTS - 1)
    receiver.answers = [(503, {})]
    assert services.delivery_attempt(delivery.pk).status == "failed"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == services.MAX_ATTEMPTS and delivery.next_attempt_at is None


def test_a_receiver_that_does_not_answer_in_time_is_a_failed_attempt(
    make_endpoint, receiver, django_capture_on_commit_callbacks, settings
):
    settings.WEBHOOK_TIMEOUT_S = 0.2
    receiver.delay_s = 0.7
    endpoint, _ = make_endpoint()
    delivery = queued(endpoint, django_capture_on_commit_callbacks)
    started = time.monotonic()
    assert services.delivery_attempt(delivery.pk).status == "retry"
    assert time.monotonic() - started < 0.6
    delivery.refresh_from_db()
    assert delivery.last_error == "no answer within 0.2 s"
    assert delivery.last_status_code is None and delivery.status == DeliveryStatus.PENDING


def test_a_redirect_is_not_followed(make_endpoint, receiver, django_capture_on_commit_callbacks):
    endpoint, _ = make_endpoint()
    delivery = queued(endpoint, django_capture_on_commit_callbacks)
    receiver.answers = [(302, {"Location": "http://elsewhere.example.com/steal"})]
    assert services.delivery_attempt(delivery.pk).status == "retry"
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.last_status_code == 302
    assert "elsewhere.example.com" in delivery.last_error and "not followed" in delivery.last_error


def test_nothing_is_logged_with_the_secret(
    make_endpoint, receiver, django_capture_on_commit_callbacks, caplog
):
    endpoint, secret = make_endpoint()
    delivery = queued(endpoint, django_capture_on_commit_callbacks)
    receiver.answers = [(500, {})]
    with caplog.at_level("DEBUG"):
        services.delivery_attempt(delivery.pk)
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        services.delivery_attempt(delivery.pk)
    assert caplog.records and secret not in caplog.text


# --- durability ------------------------------------------------------------------------


def test_the_sweep_sends_overdue_deliveries_but_not_claimed_or_future_ones(
    make_endpoint, django_capture_on_commit_callbacks, monkeypatch
):
    endpoint, _ = make_endpoint()
    lost, claimed, later = (queued(endpoint, django_capture_on_commit_callbacks) for _ in range(3))
    now = timezone.now()
    Delivery.objects.filter(pk=lost.pk).update(next_attempt_at=now - timedelta(minutes=5))
    # An attempt in flight holds a lease: its next attempt time is ahead.
    Delivery.objects.filter(pk=claimed.pk).update(next_attempt_at=now + timedelta(minutes=2))
    Delivery.objects.filter(pk=later.pk).update(next_attempt_at=now + timedelta(hours=1))
    sent = []
    monkeypatch.setattr(
        services.current_app, "send_task", lambda name, args, countdown: sent.append(args[0])
    )
    assert tasks.webhooks_send_due() == 1
    assert sent == [lost.pk]


def test_the_tasks_and_the_beat_entry_are_registered_under_the_names_used():
    from opsconsole.celery import app

    app.loader.import_default_modules()
    assert services.DELIVER_TASK in app.tasks
    beat = settings.CELERY_BEAT_SCHEDULE["webhooks-send-due"]["task"]
    assert beat == tasks.webhooks_send_due.name and beat in app.tasks
    # A countdown past Redis's visibility timeout would be delivered twice.
    visibility_s = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert visibility_s > settings.WEBHOOK_COUNTDOWN_MAX_S


def test_old_finished_deliveries_leave_the_log_pending_ones_stay(
    make_endpoint, django_capture_on_commit_callbacks, monkeypatch
):
    endpoint, _ = make_endpoint()
    rows = [queued(endpoint, django_capture_on_commit_callbacks) for _ in range(4)]
    old = timezone.now() - timedelta(days=settings.WEBHOOK_DELIVERY_KEEP_DAYS + 1)
    for row, status in zip(rows[:3], ["delivered", "failed", "pending"], strict=True):
        Delivery.objects.filter(pk=row.pk).update(status=status, created_at=old)
    monkeypatch.setattr(services.current_app, "send_task", lambda *a, **k: None)
    tasks.webhooks_send_due()
    assert set(Delivery.objects.values_list("pk", flat=True)) == {rows[2].pk, rows[3].pk}


def test_emit_sends_after_the_commit_and_a_rollback_sends_nothing(
    make_endpoint, monkeypatch, django_capture_on_commit_callbacks
):
    make_endpoint(events_wanted=[events.ROLLOUT_STARTED])
    sent_ids = []
    monkeypatch.setattr(
        services.current_app, "send_task", lambda name, args, countdown: sent_ids.append(args[0])
    )
    with pytest.raises(RuntimeError), transaction.atomic():
        services.emit(events.ROLLOUT_STARTED, {"rollout": 1})
        raise RuntimeError("the state change failed")
    assert not Delivery.objects.exists() and sent_ids == []

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        [delivery] = services.emit(events.ROLLOUT_STARTED, {"rollout": 2})
        # Not before the commit: the worker would not see the row yet.
        assert sent_ids == []
    assert sent_ids == [delivery.pk]


def test_only_active_endpoints_that_want_the_event_get_it(
    make_endpoint, django_capture_on_commit_callbacks
):
    wants, _ = make_endpoint(events_wanted=[events.TENANT_FAILED])
    make_endpoint(events_wanted=[events.ROLLOUT_STARTED])
    inactive, _ = make_endpoint(events_wanted=[events.TENANT_FAILED])
    Endpoint.objects.filter(pk=inactive.pk).update(active=False)
    with django_capture_on_commit_callbacks(execute=False) as sends:
        services.emit(events.TENANT_FAILED, {"tenant": "acme"})
    assert list(Delivery.objects.values_list("endpoint", flat=True)) == [wants.pk]
    assert len(sends) == 1


# --- events, emitted by the real transitions ------------------------------------------


@pytest.fixture
def listening(make_endpoint):
    endpoint, _ = make_endpoint()
    return endpoint


def sent(event: str) -> list[dict]:
    return [d.payload for d in Delivery.objects.filter(event=event).order_by("id")]


def active_tenant(slug: str, ring: int = 1) -> Tenant:
    return Tenant.objects.create(
        name=slug.title(),
        slug=slug,
        region="us-east-1",
        ring=ring,
        status=TenantStatus.ACTIVE,
        current_release="2026.11.0",
        desired_release="2026.11.0",
    )


def release(version: str = "2026.12.0") -> Release:
    return Release.objects.create(version=version, artifact_type="zip", runtime="python3.12")


def start(tenants: int) -> Rollout:
    for i in range(tenants):
        active_tenant(f"wh-{i}", ring=0 if i == 0 else 1)
    return rollout_start(
        release=release(), target=Target(), strategy=Strategy(max_parallel=5, bake_s=0)
    )


def canary_job(rollout: Rollout) -> Job:
    rollout_advance(rollout.pk)
    dep = rollout.deployments.get(wave=0)
    assert dep.status == DeploymentStatus.RUNNING
    return dep.job


def test_rollout_started_halted_and_deployment_failed(
    listening, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        rollout = start(3)
        job = canary_job(rollout)
        Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, error="health answered 500")
        job.refresh_from_db()
        # What the job runner calls when the deploy job fails.
        get_kind(JOB_KIND).on_failure(job)
        rollout_advance(rollout.pk)
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.HALTED

    [started] = sent(events.ROLLOUT_STARTED)
    assert started == {
        "rollout": rollout.pk,
        "release": "2026.12.0",
        "status": "running",
        "waves": rollout.wave_sizes,
        "tenants": 3,
    }
    [failed] = sent(events.DEPLOYMENT_FAILED)
    dep = Deployment.objects.get(job=job)
    assert failed["deployment"] == dep.pk and failed["tenant"] == "wh-0"
    assert failed["release"] == "2026.12.0" and failed["rollout"] == rollout.pk
    assert failed["reason"].startswith("health answered 500 (the alias never moved")
    [halted] = sent(events.ROLLOUT_HALTED)
    assert halted["status"] == "halted" and "canary wave" in halted["reason"]
    assert not sent(events.ROLLOUT_FINISHED)


def test_rollout_finished_with_its_final_status(
    listening, django_capture_on_commit_callbacks, settings
):
    settings.OPSCONSOLE_BASE_URL = "https://console.example.com/"
    with django_capture_on_commit_callbacks(execute=False):
        rollout = start(1)
        job = canary_job(rollout)
        get_kind(JOB_KIND).on_success(job)
        rollout_advance(rollout.pk)
        again = release("2026.12.1")
        cancelled = rollout_start(release=again, target=Target(), strategy=Strategy())
        rollout_cancel(cancelled)
    succeeded, stopped = sent(events.ROLLOUT_FINISHED)
    assert succeeded["rollout"] == rollout.pk and succeeded["status"] == "succeeded"
    assert succeeded["deployments"] == {"succeeded": 1}
    assert succeeded["url"] == f"https://console.example.com/rollouts/{rollout.pk}/"
    assert stopped["rollout"] == cancelled.pk and stopped["status"] == "cancelled"
    assert stopped["deployments"] == {"cancelled": 1}


def test_tenant_onboarded_and_failed_from_the_provisioning_job(
    listening, django_capture_on_commit_callbacks
):
    kind = get_kind("tenant_provision")
    with django_capture_on_commit_callbacks(execute=False):
        good = Tenant.objects.create(name="Good", slug="wh-good", region="us-east-1")
        bad = Tenant.objects.create(name="Bad", slug="wh-bad", region="us-east-1")
        assert good.status == bad.status == TenantStatus.PROVISIONING
        good_job = job_create(kind="tenant_provision", subject_type="tenant", subject_id=good.slug)
        bad_job = job_create(kind="tenant_provision", subject_type="tenant", subject_id=bad.slug)
        kind.on_success(good_job)
        bad_job.error = "database: the shared instance is full"
        kind.on_failure(bad_job)
        # A second success (a reconcile of an active tenant) is no new onboarding.
        kind.on_success(good_job)
    assert Tenant.objects.get(pk=good.pk).status == TenantStatus.ACTIVE
    [onboarded] = sent(events.TENANT_ONBOARDED)
    assert onboarded["tenant"] == "wh-good" and onboarded["status"] == "active"
    assert onboarded["job"] == good_job.pk
    [failed] = sent(events.TENANT_FAILED)
    assert failed["tenant"] == "wh-bad" and failed["status"] == "failed"
    assert failed["reason"] == "database: the shared instance is full"

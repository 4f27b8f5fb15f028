"""Fault drill (make faults): the broker goes away while the console keeps taking work.

A private redis-server is started for this test so it can be killed and brought back. While
it is down a job is still created (the row is saved; sending fails and is logged), /healthz
says 503 naming the broker, and pages show the banner. When it is back, the beat sweep
re-sends the job (its failed send cleared ``dispatched_at``: no timestamp is edited here)
and a real worker runs it to the end.
"""

from __future__ import annotations

import time

import pytest

from opsconsole.jobs.models import JobStatus
from opsconsole.jobs.services import job_create, jobs_requeue_expired
from opsconsole.sandbox import services
from tests.faults.private_redis import reset_pools, start_redis

pytestmark = pytest.mark.integration


def test_jobs_survive_a_broker_outage(
    settings, worker_factory, live_aws, tmp_path, client, viewer_user
):
    from opsconsole.celery import app
    from opsconsole.sandbox.seed import sandbox_seed

    sandbox_seed()
    port = services.free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    redis = start_redis(port, tmp_path)
    old = app.conf.broker_url
    app.conf.broker_url = broker
    reset_pools(app)
    try:
        redis.kill()
        redis.wait()
        # Broker down: the request still saves the job, and /healthz names the broker.
        job = job_create(kind="account_check", subject_type="account", subject_id="drill")
        job.refresh_from_db()
        assert job.status == JobStatus.QUEUED
        # The send really failed (nothing listens), so the row says it was never sent.
        assert job.dispatched_at is None
        client.force_login(viewer_user)  # which check failed is for console members only
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["checks"]["broker"]["ok"] is False

        # Broker back, a worker on it; the sweep re-sends what was never delivered.
        redis = start_redis(port, tmp_path)
        worker = worker_factory(REDIS_URL=broker)
        reset_pools(app)
        assert jobs_requeue_expired()["resent"] == 1
        deadline = time.monotonic() + 60
        while not job.is_finished:
            assert time.monotonic() < deadline, worker.log_path.read_text()[-2000:]
            time.sleep(0.3)
            job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED
    finally:
        app.conf.broker_url = old
        reset_pools(app)
        services.stop_process(redis)

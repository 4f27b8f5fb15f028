"""A migration whose job lost its lease stops: its statement is cancelled at once, so it
never runs beside the worker that took the job over."""

from __future__ import annotations

import time

import pytest

from deployments.migration_runner import migrate_database
from opsconsole.jobs import runner, services
from opsconsole.jobs.models import Job, JobStatus
from opsconsole.jobs.registry import register_job_kind

from .conftest import spec

LEASE_S = 0.6
RESULT: dict = {}


def _migrate(job, step):
    # The sweep gives the job to another worker while the long statement runs.
    Job.objects.filter(pk=job.pk).update(lease_owner="another-worker")
    started = time.monotonic()
    result = migrate_database(
        target=RESULT["target"],
        migrations=[spec(1, "slow", "SELECT pg_sleep(30);")],
        release_version="1.0.0",
    )
    RESULT.update(seconds=time.monotonic() - started, error=result.error)
    if result.error:
        raise RuntimeError(result.error.message)
    return {}


register_job_kind("test_migration_lease", label="Migrate", steps=[("m", "Migrate", _migrate)])


@pytest.fixture
def sent(monkeypatch):
    from opsconsole.jobs import tasks

    monkeypatch.setattr(tasks.job_run, "apply_async", lambda args, countdown=None: None)


def test_a_migration_stops_when_its_job_lost_the_lease(transactional_db, tenant_db, sent, settings):
    settings.JOB_LEASE_SECONDS = LEASE_S
    RESULT.clear()
    RESULT["target"] = tenant_db
    job = services.job_create(kind="test_migration_lease", subject_type="t", subject_id="m")
    assert runner.job_execute(job.pk, owner="w1") == "lease-lost"
    assert RESULT["seconds"] < 5, RESULT  # cancelled, not slept for 30 s
    assert "cancel" in RESULT["error"].message
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.lease_owner == "another-worker"

"""A step that outlives its lease keeps it alive, and one whose lease is taken stops.

Real threads and real sleeps against the real database: the heartbeat renews from its
own connection while the step works, and the sweep runs beside it as beat would.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections

from opsconsole.jobs import runner, services
from opsconsole.jobs.lease import Heartbeat
from opsconsole.jobs.models import Job, JobStatus, StepStatus
from opsconsole.jobs.registry import register_job_kind
from tests.tcp_proxy import TcpProxy

LEASE_S = 0.6
SEEN: dict[str, object] = {}


def _long_step(job, step):
    # Three lease periods, with the sweep running as beat would all the while.
    deadline = time.monotonic() + 3 * LEASE_S
    while time.monotonic() < deadline:
        SEEN.setdefault("sweeps", []).append(services.jobs_requeue_expired()["requeued"])
        time.sleep(LEASE_S / 4)
    return {"renewals": job.lease.renewals}


def _stolen_step(job, step):
    stopped = threading.Event()
    job.lease.on_lost(stopped.set)
    # The sweep hands the job to another worker while this step works.
    Job.objects.filter(pk=job.pk).update(lease_owner="another-worker")
    SEEN["stopped"] = stopped.wait(timeout=5 * LEASE_S)
    raise RuntimeError("statement cancelled")  # what a cancelled migration raises


register_job_kind("test_lease_long", label="Long", steps=[("long", "Long", _long_step)])
register_job_kind("test_lease_stolen", label="Stolen", steps=[("s", "Stolen", _stolen_step)])
register_job_kind("test_lease_cut", label="Cut", steps=[("c", "Cut", lambda job, step: None)])


@pytest.fixture(autouse=True)
def _short_lease(settings):
    settings.JOB_LEASE_SECONDS = LEASE_S
    SEEN.clear()


def _job(kind: str) -> Job:
    return services.job_create(kind=kind, subject_type="test", subject_id=kind, params={})


def test_a_long_step_keeps_its_lease_and_the_sweep_leaves_it_alone(transactional_db, sent):
    job = _job("test_lease_long")
    assert runner.job_execute(job.pk, owner="w1") == "succeeded"
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert SEEN["sweeps"] and not any(SEEN["sweeps"])  # never re-queued
    assert job.steps.get().output["renewals"] >= 3


def test_a_step_that_lost_its_lease_is_told_to_stop_and_writes_nothing(transactional_db, sent):
    job = _job("test_lease_stolen")
    assert runner.job_execute(job.pk, owner="w1") == "lease-lost"
    assert SEEN["stopped"] is True
    job.refresh_from_db()
    step = job.steps.get()
    # The step's failure belongs to a run that no longer owns the job: not recorded.
    assert job.status == JobStatus.RUNNING and job.lease_owner == "another-worker"
    assert step.status == StepStatus.RUNNING and step.error == ""


@pytest.fixture
def threads_behind_proxy(monkeypatch, settings):
    """Every thread but the test's reaches PostgreSQL through a proxy the test can cut:
    the heartbeat's own connection sees reset sockets and refused connects, the test's
    does not."""
    db = settings.DATABASES["default"]
    proxy = TcpProxy(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)).start()
    main = threading.get_ident()
    create = connections.create_connection

    def create_connection(alias):
        wrapper = create(alias)
        if threading.get_ident() != main:
            wrapper.settings_dict = {
                **wrapper.settings_dict,
                "HOST": "127.0.0.1",
                "PORT": str(proxy.port),
            }
        return wrapper

    monkeypatch.setattr(connections, "create_connection", create_connection)
    yield proxy
    proxy.cut()


def _until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_the_heartbeat_renews_again_once_its_lost_connection_comes_back(
    transactional_db, sent, threads_behind_proxy
):
    job = _job("test_lease_cut")
    assert runner.job_claim(job.pk, owner="w1")
    with Heartbeat(job_id=job.pk, owner="w1", lease_seconds=LEASE_S) as heartbeat:
        assert _until(lambda: heartbeat.renewals >= 1, 5 * LEASE_S)
        threads_behind_proxy.cut()  # its open connection is reset, new ones refused
        time.sleep(LEASE_S)  # a renewal or two fail meanwhile
        before = heartbeat.renewals
        threads_behind_proxy.start()  # the database answers again
        back = time.monotonic()
        renewed = _until(lambda: heartbeat.renewals > before, 5 * LEASE_S)
        assert renewed, "the heartbeat never renewed after its connection came back"
        assert not heartbeat.lost.is_set()
    job.refresh_from_db()
    # Renewed from the new connection: the lease runs past the outage.
    assert job.lease_expires_at.timestamp() > time.time() - (time.monotonic() - back)


@pytest.fixture
def sent(monkeypatch):
    from opsconsole.jobs import tasks

    calls = []
    monkeypatch.setattr(
        tasks.job_run, "apply_async", lambda args, countdown=None: calls.append((args, countdown))
    )
    return calls

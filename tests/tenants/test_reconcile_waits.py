"""A repair waits while another job of its tenant is paused half-way (a deployment waiting
out an unreachable AWS between two steps): the two pipelines never interleave.

The drill that restarts the local AWS empty mid-rollout saw it: a repair that ran in such a
gap re-created the function at the release the deployment was still checking; the
deployment then failed and pointed the tenant back at its old release, and the tenant
drifted right after its repair."""

from __future__ import annotations

import pytest

from opsconsole.jobs.models import Job, JobStatus, StepStatus
from opsconsole.jobs.registry import StepWait, register_job_kind
from opsconsole.jobs.runner import job_execute
from opsconsole.jobs.services import job_create
from tenants.jobs import step_no_job_half_done
from tenants.models import Tenant

PAUSE = {"on": True}


def _first(job, step):
    return {"done": True}


def _second(job, step):
    if PAUSE["on"]:
        raise StepWait("AWS endpoint unreachable: trying again in 2 s", retry_in=2)
    return {}


register_job_kind(
    "test_half_done",
    label="Half-done test job",
    steps=[("first", "First", _first), ("second", "Second", _second)],
)


@pytest.fixture
def tenant(db, monkeypatch):
    from opsconsole.jobs import tasks

    monkeypatch.setattr(tasks.job_run, "apply_async", lambda *a, **k: None)
    PAUSE["on"] = True
    return Tenant.objects.create(name="Half", slug="rw-half", region="us-east-1")


def _job(kind: str, tenant: Tenant) -> Job:
    return job_create(kind=kind, subject_type="tenant", subject_id=tenant.slug)


def test_a_repair_waits_while_another_job_of_the_tenant_is_paused_half_way(tenant):
    other = _job("test_half_done", tenant)
    assert job_execute(other.pk, owner="w1") == "waiting"
    other.refresh_from_db()
    assert other.status == JobStatus.QUEUED  # the lease is free: a repair can be claimed

    repair = _job("tenant_reconcile", tenant)
    assert job_execute(repair.pk, owner="w2") == "waiting"
    steps = list(repair.steps.order_by("position"))
    assert steps[0].name == "no_job_half_done"
    assert steps[0].status == StepStatus.WAITING
    assert str(other) in steps[0].detail
    assert all(s.status == StepStatus.PENDING for s in steps[1:])  # nothing touched

    PAUSE["on"] = False
    Job.objects.filter(pk=other.pk).update(run_after=None)
    assert job_execute(other.pk, owner="w1") == "succeeded"
    repair.refresh_from_db()
    assert step_no_job_half_done(repair, steps[0]) == {}  # its turn now


def test_a_job_queued_but_not_yet_started_does_not_hold_a_repair(tenant):
    _job("test_half_done", tenant)  # sent, never claimed
    repair = _job("tenant_reconcile", tenant)
    assert step_no_job_half_done(repair, repair.steps.first()) == {}


def test_a_queued_deployment_holds_a_repair_until_it_has_run(tenant):
    """The rollout set the tenant's desired release when it queued the deployment: a
    repair before that deployment runs would put the unchecked release live."""
    deploy = job_create(
        kind="tenant_deploy", subject_type="tenant", subject_id=tenant.slug, params={}
    )
    repair = _job("tenant_reconcile", tenant)
    with pytest.raises(StepWait, match="its release is not checked yet"):
        step_no_job_half_done(repair, repair.steps.first())
    Job.objects.filter(pk=deploy.pk).update(status=JobStatus.SUCCEEDED)
    assert step_no_job_half_done(repair, repair.steps.first()) == {}

"""A worker killed with SIGKILL part way through onboarding: the lease expires, the sweep
re-queues the job, another worker resumes it, and the tenant ends active with exactly one
of each resource."""

import os
import signal
import time

import pytest

from opsconsole.aws.clients import client
from opsconsole.jobs.models import Job, JobStatus, StepStatus
from opsconsole.jobs.services import job_create, jobs_requeue_expired
from tenants.models import Tenant
from tests.integration.demo_support import tagged, tenant_db_prefix
from tests.tenants.conftest import drop_tenant_databases

pytestmark = pytest.mark.integration


@pytest.fixture
def crash_dbs():
    drop_tenant_databases(tenant_db_prefix("t9"))
    yield
    drop_tenant_databases(tenant_db_prefix("t9"))


def test_sigkill_mid_onboarding_still_ends_with_one_of_each(
    worker_factory, live_aws, crash_dbs, settings
):
    from opsconsole.sandbox.seed import sandbox_seed

    sandbox_seed()
    # Slow steps and a short lease so the kill lands part way and the takeover is quick.
    first = worker_factory(JOB_STEP_DELAY_SECONDS="0.7", JOB_LEASE_SECONDS="3")
    tenant = Tenant.objects.create(name="Crash", slug=tagged("t9-crash"), region="us-east-1")
    job = job_create(kind="tenant_provision", subject_type="tenant", subject_id=tenant.slug)

    deadline = time.monotonic() + 60
    while job.steps.filter(status=StepStatus.SUCCEEDED).count() < 5:
        assert time.monotonic() < deadline, first.log_path.read_text()[-2000:]
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING  # the dead worker still "holds" it

    time.sleep(3.5)  # the lease runs out
    second = worker_factory(JOB_LEASE_SECONDS="3")
    assert jobs_requeue_expired()["requeued"] == 1  # what beat does every 30 s

    deadline = time.monotonic() + 90
    while not job.is_finished:
        assert time.monotonic() < deadline, second.log_path.read_text()[-3000:]
        time.sleep(0.3)
        job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 2
    tenant.refresh_from_db()
    assert tenant.status == "active"

    name = f"opsconsole-{tenant.slug}"
    assert [
        f["FunctionName"]
        for f in client("lambda").list_functions()["Functions"]
        if f["FunctionName"] == name
    ] == [name]
    assert len(client("lambda").list_versions_by_function(FunctionName=name)["Versions"]) == 2
    assert len([a for a in client("apigatewayv2").get_apis()["Items"] if a["Name"] == name]) == 1
    assert len([r for r in client("iam").list_roles()["Roles"] if r["RoleName"] == name]) == 1
    assert (
        len(
            [
                s
                for s in client("secretsmanager").list_secrets()["SecretList"]
                if s["Name"] == f"opsconsole/tenants/{tenant.slug}/db"
            ]
        )
        == 1
    )
    assert len(client("cloudwatch").describe_alarms(AlarmNamePrefix=name)["MetricAlarms"]) == 5
    assert Job.objects.filter(subject_id=tenant.slug).count() == 1

"""A real worker takes a job from the real broker to the end, against the sandbox AWS."""

import time

import pytest

from opsconsole.jobs.models import Job, JobStatus, StepStatus
from opsconsole.jobs.services import job_create

pytestmark = pytest.mark.integration


def _wait_finished(job: Job, worker, timeout: float = 90) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            return job
        assert worker.poll() is None, worker.log_path.read_text()[-3000:]
        time.sleep(0.3)
    raise AssertionError(
        f"job still {job.status}; worker log:\n{worker.log_path.read_text()[-3000:]}"
    )


def test_worker_runs_account_check_to_the_end(worker, live_aws):
    from opsconsole.sandbox.seed import sandbox_seed

    sandbox_seed()
    job = job_create(kind="account_check", subject_type="account", subject_id="us-east-1")
    job = _wait_finished(job, worker)
    steps = list(job.steps.all())
    assert job.status == JobStatus.SUCCEEDED, [(s.name, s.error) for s in steps]
    assert [s.status for s in steps] == [StepStatus.SUCCEEDED] * 5
    network = job.steps.get(name="network").output
    assert network["vpc_id"].startswith("vpc-") and len(network["subnet_ids"]) == 2
    assert job.attempts == 1


@pytest.mark.worker_region("eu-west-3")
def test_worker_records_aws_failure_text_on_the_step(worker, live_aws):
    # Nothing was seeded in eu-west-3: the job fails at the network step with the reason,
    # and the steps after it never ran.
    job = job_create(kind="account_check", subject_type="account", subject_id="eu-west-3")
    job = _wait_finished(job, worker)
    assert job.status == JobStatus.FAILED
    network = job.steps.get(name="network")
    assert network.status == StepStatus.FAILED
    assert "No VPC tagged Name=opsconsole" in network.error
    assert job.steps.get(name="identity").status == StepStatus.SUCCEEDED
    assert job.steps.get(name="artifact_bucket").status == StepStatus.PENDING
    assert "VPC, private subnets, security groups" in job.error

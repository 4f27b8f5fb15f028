"""Durable jobs: dispatch on commit, claim by conditional update, leases, waits, sweep."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from opsconsole.jobs import runner, services
from opsconsole.jobs.models import Job, JobStatus, StepRun, StepStatus
from opsconsole.jobs.registry import StepWait, register_job_kind

CALLS: list[str] = []
BEHAVIOUR: dict[str, object] = {}


def _step(name):
    def fn(job, step):
        CALLS.append(name)
        action = BEHAVIOUR.get(name)
        if isinstance(action, Exception):
            raise action
        if callable(action):
            action(job)
        return {"seen": name}

    return fn


register_job_kind(
    "test_three_steps",
    label="Three steps",
    steps=[
        ("one", "Step one", _step("one")),
        ("two", "Step two", _step("two")),
        ("three", "Step three", _step("three")),
    ],
)


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    BEHAVIOUR.clear()


@pytest.fixture
def sent(monkeypatch):
    """Messages handed to the broker, without needing a worker."""
    from opsconsole.jobs import tasks

    calls = []
    monkeypatch.setattr(
        tasks.job_run, "apply_async", lambda args, countdown=None: calls.append((args, countdown))
    )
    return calls


def _create(**kwargs):
    return services.job_create(
        kind="test_three_steps",
        subject_type="tenant",
        subject_id=kwargs.pop("subject_id", "acme"),
        **kwargs,
    )


def test_job_is_sent_only_after_commit(db, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = _create()
        assert sent == []  # still inside the transaction
    assert len(callbacks) == 1
    assert sent == [([job.pk], None)]
    job.refresh_from_db()
    assert job.dispatched_at is not None
    assert [s.name for s in job.steps.all()] == ["one", "two", "three"]


def test_double_submit_makes_one_job(db, sent):
    first = _create()
    second = _create()
    assert first.pk == second.pk
    assert Job.objects.count() == 1


def test_only_one_worker_wins_the_claim(db):
    job = _create()
    assert runner.job_claim(job.pk, owner="w1") is True
    assert runner.job_claim(job.pk, owner="w2") is False
    job.refresh_from_db()
    assert (job.status, job.lease_owner, job.attempts) == (JobStatus.RUNNING, "w1", 1)


def test_two_jobs_on_one_subject_never_run_at_once(db):
    first = _create(unique=False)
    second = _create(unique=False)
    assert runner.job_claim(first.pk, owner="w1")
    assert runner.job_claim(second.pk, owner="w2") is False
    assert runner.job_execute(second.pk, owner="w2") == "busy"
    # An expired lease holds the subject until the sweep has queued its job again; then
    # the subject is free.
    Job.objects.filter(pk=first.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert runner.job_claim(second.pk, owner="w2") is False
    assert services.jobs_requeue_expired()["requeued"] == 1
    assert runner.job_claim(second.pk, owner="w2")


def test_the_database_refuses_a_second_running_job_on_a_subject(db):
    first = _create(unique=False)
    second = _create(unique=False)
    assert runner.job_claim(first.pk, owner="w1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.filter(pk=second.pk).update(status=JobStatus.RUNNING)


def test_racing_claims_on_one_subject_let_exactly_one_job_run(transactional_db):
    """Two workers claim two jobs of one subject at the same instant, 25 times over."""
    pairs = [
        (
            _create(subject_id=f"race-{i}", unique=False),
            _create(subject_id=f"race-{i}", unique=False),
        )
        for i in range(25)
    ]
    barrier = threading.Barrier(2)
    wins: list[list[bool]] = [[], []]

    def claim(side: int) -> None:
        try:
            for pair in pairs:
                barrier.wait(timeout=10)
                wins[side].append(runner.job_claim(pair[side].pk, owner=f"w{side}"))
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(side,)) for side in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [a + b for a, b in zip(wins[0], wins[1], strict=True)] == [1] * len(pairs)
    assert Job.objects.filter(status=JobStatus.RUNNING).count() == len(pairs)


def test_execute_runs_steps_in_order_and_records_output(db):
    job = _create()
    assert runner.job_execute(job.pk, owner="w1") == "succeeded"
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.finished_at and not job.lease_owner
    assert CALLS == ["one", "two", "three"]
    steps = list(job.steps.all())
    assert all(s.status == StepStatus.SUCCEEDED and s.started_at and s.finished_at for s in steps)
    assert steps[1].output == {"seen": "two"}


def test_failure_records_error_and_retry_resumes_from_failed_step(db, sent):
    job = _create()
    BEHAVIOUR["two"] = RuntimeError("AccessDenied: not allowed to CreateFunction")
    assert runner.job_execute(job.pk, owner="w1") == "failed"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "not allowed to CreateFunction" in job.error
    failed = job.steps.get(name="two")
    assert failed.status == StepStatus.FAILED and "AccessDenied" in failed.error
    assert job.steps.get(name="three").status == StepStatus.PENDING

    BEHAVIOUR.clear()
    CALLS.clear()
    assert services.job_retry(job)
    assert runner.job_execute(job.pk, owner="w1") == "succeeded"
    assert CALLS == ["two", "three"]  # step one is not run again


def test_wait_releases_the_worker_and_requeues_later(db, sent, django_capture_on_commit_callbacks):
    job = _create()
    BEHAVIOUR["two"] = StepWait("waiting for RDS (creating)", retry_in=30)
    with django_capture_on_commit_callbacks(execute=True):
        assert runner.job_execute(job.pk, owner="w1") == "waiting"
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.attempts == 0 and not job.lease_owner
    assert job.run_after > timezone.now() + timedelta(seconds=25)
    step = job.steps.get(name="two")
    assert (step.status, step.detail) == (StepStatus.WAITING, "waiting for RDS (creating)")
    assert sent[-1] == ([job.pk], 30)
    # Not due yet: nobody can claim it.
    assert runner.job_claim(job.pk, owner="w2") is False


def test_sweep_requeues_a_job_whose_worker_died(db, sent, django_capture_on_commit_callbacks):
    job = _create()
    assert runner.job_claim(job.pk, owner="dead-worker")
    job.steps.filter(name="one").update(status=StepStatus.RUNNING)
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=5))
    with django_capture_on_commit_callbacks(execute=True):
        result = services.jobs_requeue_expired()
    assert result["requeued"] == 1
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.lease_owner == ""
    assert job.steps.get(name="one").status == StepStatus.PENDING
    assert ([job.pk], None) in sent
    assert runner.job_execute(job.pk, owner="w2") == "succeeded"


def test_sweep_resends_a_lost_message(db, sent, django_capture_on_commit_callbacks):
    job = _create()
    Job.objects.filter(pk=job.pk).update(dispatched_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.jobs_requeue_expired()["resent"] == 1
    assert sent == [([job.pk], None)]


def test_gives_up_after_max_attempts(db):
    job = _create()
    Job.objects.filter(pk=job.pk).update(attempts=job.max_attempts)
    assert runner.job_execute(job.pk, owner="w1") == "gave-up"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "attempts" in job.error


def test_cancel_queued_and_running(db, sent):
    queued = _create(subject_id="q")
    assert services.job_cancel(queued)
    queued.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED

    running = _create(subject_id="r")
    # A user presses Cancel while step one runs: the runner stops before step two.
    BEHAVIOUR["one"] = lambda job: services.job_cancel(job)
    assert runner.job_execute(running.pk, owner="w1") == "cancelled"
    assert CALLS == ["one"]
    running.refresh_from_db()
    assert running.status == JobStatus.CANCELLED
    assert running.steps.get(name="two").status == StepStatus.PENDING


def test_progress_partial_polls_until_the_job_ends(db, client_for, viewer_user):
    job = _create()
    client = client_for(viewer_user)
    running = client.get(reverse("jobs:progress", args=[job.pk]))
    assert running.status_code == 200
    assert b'hx-trigger="every 2s"' in running.content
    assert b"Step two" in running.content
    runner.job_execute(job.pk, owner="w1")
    done = client.get(reverse("jobs:progress", args=[job.pk]))
    assert done.status_code == 286  # htmx: stop polling
    assert b"hx-trigger" not in done.content
    assert b"Succeeded" in done.content


def test_failed_job_page_offers_retry_to_operators_only(db, client_for, viewer_user, operator_user):
    job = _create()
    BEHAVIOUR["one"] = RuntimeError("Throttling: Rate exceeded")
    runner.job_execute(job.pk, owner="w1")
    url = reverse("jobs:detail", args=[job.pk])
    runs_page = client_for(viewer_user).get(url).content.decode()
    assert "<h2>Runs</h2>" in runs_page and "<code>w1</code>" in runs_page
    assert b"Retry from the failed step" in client_for(operator_user).get(url).content
    viewer_page = client_for(viewer_user).get(url).content
    assert b"Rate exceeded" in viewer_page
    assert b"Retry from the failed step" not in viewer_page


def test_a_run_costs_one_statement_per_step_boundary(transactional_db, django_assert_num_queries):
    """As a worker runs it (autocommit): the claim (which reads the steps too), one write
    as each step starts (ending the one before it), one to finish. A rollout runs
    thousands."""
    job = _create()
    with django_assert_num_queries(1 + 3 + 1):
        assert runner.job_execute(job.pk, owner="w1") == "succeeded"
    steps = list(Job.objects.get(pk=job.pk).steps.all())
    assert [s.status for s in steps] == [StepStatus.SUCCEEDED] * 3
    assert all(s.started_at <= s.finished_at for s in steps)
    assert [s.output for s in steps] == [{"seen": "one"}, {"seen": "two"}, {"seen": "three"}]
    # The same statements kept the record of who ran each step, when, and how it ended.
    runs = list(StepRun.objects.filter(step__job=job).order_by("started_at"))
    assert [(r.step.name, r.owner, r.outcome) for r in runs] == [
        ("one", "w1", "succeeded"),
        ("two", "w1", "succeeded"),
        ("three", "w1", "succeeded"),
    ]
    assert all(r.started_at <= r.ended_at for r in runs)
    assert runs[0].ended_at <= runs[1].started_at <= runs[1].ended_at <= runs[2].started_at


def test_a_worker_that_lost_its_lease_writes_nothing(db):
    job = _create()

    def stolen(job):
        # The sweep gave the job to another worker while this step ran.
        Job.objects.filter(pk=job.pk).update(lease_owner="w2")

    BEHAVIOUR["one"] = stolen
    assert runner.job_execute(job.pk, owner="w1") == "lease-lost"
    assert CALLS == ["one"]
    [run] = StepRun.objects.filter(step__job=job)
    assert (run.owner, run.outcome) == ("w1", "lease-lost") and run.ended_at
    one = Job.objects.get(pk=job.pk).steps.get(name="one")
    assert one.status == StepStatus.RUNNING and one.finished_at is None  # not marked done


def test_a_transient_aws_failure_retries_the_step_then_fails_in_aws_words(transactional_db, sent):
    from opsconsole.aws.errors import AwsError

    job = _create()
    BEHAVIOUR["two"] = AwsError(
        "Rate exceeded", code="ThrottlingException", operation="GetSecretValue", permanent=False
    )
    assert runner.job_execute(job.pk, owner="w1") == "waiting"
    job.refresh_from_db()
    step = job.steps.get(name="two")
    # Queued again with a backoff, step one kept, the attempt spent (not given back).
    assert job.status == JobStatus.QUEUED and job.attempts == 1
    assert step.status == StepStatus.WAITING and "trying again in 2 s" in step.detail
    assert sent[-1] == ([job.pk], 2)
    for attempt in range(2, job.max_attempts + 1):
        Job.objects.filter(pk=job.pk).update(run_after=None)
        outcome = runner.job_execute(job.pk, owner="w1")
        assert outcome == ("failed" if attempt == job.max_attempts else "waiting")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "GetSecretValue: ThrottlingException: Rate exceeded" in job.error
    assert CALLS.count("one") == 1 and CALLS.count("two") == job.max_attempts
    # A permanent failure is not retried.
    other = _create()
    BEHAVIOUR["two"] = AwsError("Denied", code="AccessDenied", permanent=True)
    assert runner.job_execute(other.pk, owner="w1") == "failed"


register_job_kind(
    "test_hooked",
    label="Hooked",
    steps=[("one", "Step one", _step("one")), ("two", "Step two", _step("two"))],
    on_success=lambda job: CALLS.append("on_success"),
    on_failure=lambda job: CALLS.append("on_failure"),
)


@pytest.mark.parametrize("last_step", ["succeeds", "fails"])
def test_a_worker_that_lost_its_lease_in_the_last_step_closes_its_run(db, last_step):
    """The fault drills' unclosed run: a database blip kept the heartbeat from renewing,
    the sweep handed the job on while its last step worked, and the final write found the
    lease gone. That run must still end (it is this worker's record), and the hook must not
    run from a job this worker no longer owns."""
    job = services.job_create(kind="test_hooked", subject_type="tenant", subject_id="acme")

    def stolen(job):
        Job.objects.filter(pk=job.pk).update(lease_owner="w2")
        if last_step == "fails":
            raise RuntimeError("AWS said no")

    BEHAVIOUR["two"] = stolen
    assert runner.job_execute(job.pk, owner="w1") == "lease-lost"
    assert CALLS == ["one", "two"]  # no hook
    runs = {r.step.name: r for r in StepRun.objects.filter(step__job=job)}
    assert runs["one"].outcome == "succeeded"
    assert runs["two"].outcome == "lease-lost" and runs["two"].ended_at is not None
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.lease_owner == "w2"
    assert job.steps.get(name="two").status == StepStatus.RUNNING  # not marked from here

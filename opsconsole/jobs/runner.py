"""Running a durable job: claim it by conditional update, run its steps in order under
a lease the heartbeat keeps alive, and end it together with its effect.

The runner's hot path is a handful of statements per job run (a rollout runs thousands):
the claim is one UPDATE ... RETURNING that also reads the steps, and every step boundary
is one statement that
renews the lease and records the step that ended and the step that starts, written only
while this worker still holds the lease (``_write``). A partial unique index on the lock
key (one running job per subject) makes the database itself refuse a second running job
on a tenant, so the claim needs no lock of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from opsconsole.core import rows
from opsconsole.jobs.lease import Heartbeat
from opsconsole.jobs.models import Job, JobStatus, JobStep, StepRun, StepStatus
from opsconsole.jobs.registry import StepWait, get_kind, is_transient, subject_context
from opsconsole.jobs.services import job_send_on_commit

logger = logging.getLogger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_claim(job_id: int, *, owner: str) -> bool:
    """Take the job if it is queued, due, and no other job on its subject is running."""
    return _claim(job_id, owner=owner) is not None


# One statement: the claim, and the job's steps with it. NOT EXISTS keeps the common
# "subject busy" case an empty answer; the partial unique index (one running job per lock
# key) settles a true race between two jobs of one subject claimed in the same instant:
# the loser's UPDATE fails.
_CLAIM_SQL = """
WITH claimed AS (
    UPDATE jobs_job SET status = 'running', lease_owner = %(owner)s,
        lease_expires_at = %(lease)s, attempts = attempts + 1, started_at = %(now)s,
        run_after = NULL
    WHERE id = %(id)s AND status = 'queued' AND (run_after IS NULL OR run_after <= %(now)s)
      AND (lock_key = '' OR NOT EXISTS (
          SELECT 1 FROM jobs_job other
          WHERE other.lock_key = jobs_job.lock_key AND other.status = 'running'
            AND other.id <> jobs_job.id))
    RETURNING *
)
SELECT {job_columns}, {step_columns}
FROM claimed j LEFT JOIN jobs_jobstep s ON s.job_id = j.id
ORDER BY s.position
"""


def _claim(job_id: int, *, owner: str) -> Job | None:
    """``job_claim``, returning the claimed row as the claim left it (else None), with its
    steps in ``job.claimed_steps``."""
    now = timezone.now()
    params = {
        "id": job_id,
        "owner": owner,
        "now": now,
        "lease": now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
    }
    sql = _CLAIM_SQL.format(
        job_columns=rows.columns(Job, alias="j"), step_columns=rows.columns(JobStep, alias="s")
    )
    # Outside a transaction a failed statement undoes only itself; inside one (tests,
    # callers' atomic blocks) a savepoint keeps the caller's transaction usable.
    guard = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    try:
        with guard, connection.cursor() as cur:
            cur.execute(sql, params)
            found = cur.fetchall()
    except IntegrityError:
        return None  # another job of the subject was claimed in the same instant
    if not found:
        return None
    n = rows.width(Job)
    job = rows.from_row(Job, found[0][:n])
    # A kind without steps still claims: the LEFT JOIN gives one row of NULL step columns.
    job.claimed_steps = [rows.from_row(JobStep, row[n:]) for row in found if row[n] is not None]
    return job


def _write(
    job: Job,
    owner: str,
    job_fields: dict[str, Any],
    steps: Iterable[tuple[JobStep, dict[str, Any]] | None] = (),
    *,
    unless_cancelled: bool = False,
    run_end: tuple[JobStep, str, Any] | None = None,
    run_start: JobStep | None = None,
) -> bool:
    """Update the job row and these step rows in ONE statement, only while ``owner``
    still holds the job's lease (and, with ``unless_cancelled``, nobody pressed Cancel).

    The same statement closes this worker's run of the step that ended (``run_end``:
    step, outcome, when) and opens its run of the step that starts (``run_start``): the
    StepRun rows that show which worker ran what, and that no two runs overlapped.

    Returns whether it wrote; only then do the objects in memory take the new values. A
    worker that lost its lease writes nothing, so a step another worker already re-ran is
    never marked from a stale run.
    """
    params: list[Any] = []

    def assignments(model, fields: dict[str, Any]) -> str:
        parts = []
        for name, value in fields.items():
            field = model._meta.get_field(name)
            parts.append(f'"{field.column}" = %s')
            params.append(field.get_db_prep_save(value, connection))
        return ", ".join(parts)

    sql = [f"WITH job AS (UPDATE jobs_job SET {assignments(Job, job_fields)}"]
    sql.append(" WHERE id = %s AND status = 'running' AND lease_owner = %s")
    params += [job.pk, owner]
    if unless_cancelled:
        sql.append(" AND NOT cancel_requested")
    sql.append(" RETURNING id)")
    writes = [w for w in steps if w]
    for i, (step, fields) in enumerate(writes):
        sql.append(f", step{i} AS (UPDATE jobs_jobstep SET {assignments(JobStep, fields)}")
        sql.append(" WHERE id = %s AND EXISTS (SELECT 1 FROM job))")
        params.append(step.pk)
    if run_end is not None:
        # This run only (by its start): an earlier run of this worker left open by a
        # lost database connection is not this one's to close.
        ended_step, outcome, ended_at = run_end
        sql.append(
            ", run_end AS (UPDATE jobs_steprun SET ended_at = %s, outcome = %s"
            " WHERE step_id = %s AND owner = %s AND started_at = %s AND ended_at IS NULL"
            " AND EXISTS (SELECT 1 FROM job))"
        )
        params += [
            ended_at,
            outcome,
            ended_step.pk,
            owner,
            getattr(ended_step, "run_started", None),
        ]
    if run_start is not None:
        run_start.run_started = timezone.now()
        sql.append(
            ", run_start AS (INSERT INTO jobs_steprun (step_id, owner, started_at, outcome)"
            " SELECT %s, %s, %s, '' WHERE EXISTS (SELECT 1 FROM job))"
        )
        params += [run_start.pk, owner, run_start.run_started]
    sql.append(" SELECT count(*) FROM job")
    with connection.cursor() as cur:
        cur.execute("".join(sql), params)
        wrote = cur.fetchone()[0] == 1
    if wrote:
        for name, value in job_fields.items():
            setattr(job, name, value)
        for step, fields in writes:
            for name, value in fields.items():
                setattr(step, name, value)
    return wrote


def _holds_lease(job: Job, owner: str) -> bool:
    return Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, lease_owner=owner).exists()


def _finish(
    job: Job,
    owner: str,
    status: str,
    error: str = "",
    steps: Iterable[tuple[JobStep, dict[str, Any]] | None] = (),
    run_end: tuple[JobStep, str, Any] | None = None,
) -> bool:
    """End the job and run its hook, in one transaction. False when this worker no
    longer holds the lease: then nothing is written and the hook does not run (the job
    belongs to whoever took it), but this worker's own run of the step is closed."""
    fields = {
        "status": status,
        "finished_at": timezone.now(),
        "error": error,
        "lease_owner": "",
        "lease_expires_at": None,
    }
    kind = get_kind(job.kind)
    hook = kind.on_success if status == JobStatus.SUCCEEDED else kind.on_failure
    # The job's end and its effect (the tenant active, the deployment succeeded) commit
    # together: no reader ever sees a finished job whose subject still says otherwise,
    # and a crash or a failing hook leaves the job running under its lease, so the sweep
    # runs it (and the hook) again rather than losing the effect.
    # Without a hook the one statement is atomic by itself (a rollout runs thousands).
    run_hook = hook is not None and status != JobStatus.CANCELLED
    with transaction.atomic() if run_hook else contextlib.nullcontext():
        if not _write(job, owner, fields, steps, run_end=run_end):
            # The sweep handed the job on while this run's last step worked (a database
            # blip kept the heartbeat from renewing). The run that ended stays this
            # worker's record to close; left open it reads as a worker that never ended.
            _lost(run_end[0] if run_end else None, owner)
            job.refresh_from_db()
            return False
        if run_hook:
            hook(job)
    return True


def _succeeded(step: JobStep, output: dict[str, Any] | None) -> tuple[JobStep, dict[str, Any]]:
    fields: dict[str, Any] = {
        "status": StepStatus.SUCCEEDED,
        "finished_at": timezone.now(),
        "detail": "",
    }
    if output:
        fields["output"] = {**step.output, **output}
    return step, fields


def job_execute(job_id: int, *, owner: str | None = None) -> str:
    """Run a job's unfinished steps in order. Returns what happened, for the task's log.

    Safe to call twice and from two workers: only the claimer runs, and every step is
    idempotent, so a resumed job re-checks rather than re-creates.
    """
    owner = owner or worker_id()
    try:
        return _execute(job_id, owner)
    except DatabaseError:
        # The console's database went away under this run (a restart, a network cut):
        # nothing more can be written now. The job stays running under its lease until
        # the sweep hands it on; this worker's own record of the run it was in says
        # when it stopped, once the database answers again.
        _close_runs_later(job_id, owner, timezone.now())
        raise


def _close_runs_later(job_id: int, owner: str, at, *, patience_s: float = 30) -> None:
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        try:
            connection.close()  # the broken connection; the next query opens a new one
            StepRun.objects.filter(step__job_id=job_id, owner=owner, ended_at__isnull=True).update(
                ended_at=at, outcome="interrupted"
            )
            return
        except DatabaseError:
            time.sleep(1)


def _execute(job_id: int, owner: str) -> str:
    job = _claim(job_id, owner=owner)
    if job is None:
        job = Job.objects.filter(pk=job_id).first()
        if job is None or job.is_finished or job.status == JobStatus.RUNNING:
            return "not-claimed"
        return "busy"  # queued, but not due yet or its subject is leased elsewhere

    # The subject's context (a tenant's AWS account) around every step and every hook.
    with subject_context(job.subject_type, job.subject_id):
        return _run_steps(job, owner)


def _run_steps(job: Job, owner: str) -> str:
    if job.attempts > job.max_attempts:
        _fail_unfinished_steps(job, "Gave up: the job's worker was lost too many times.")
        if not _finish(job, owner, JobStatus.FAILED, f"Gave up after {job.attempts - 1} attempts."):
            return "lease-lost"
        return "gave-up"

    kind = get_kind(job.kind)
    fns = {s.name: s.fn for s in kind.steps}
    steps = job.claimed_steps
    # Later steps and the hooks read what earlier steps recorded without a query.
    job.step_outputs = {s.name: s.output for s in steps}
    done: tuple[JobStep, dict[str, Any]] | None = None  # written with the next boundary
    for step in steps:
        if step.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED):
            continue
        if settings.JOB_STEP_DELAY_SECONDS:
            time.sleep(settings.JOB_STEP_DELAY_SECONDS)
        start = {
            "status": StepStatus.RUNNING,
            "started_at": step.started_at or timezone.now(),
            "error": "",
        }
        lease = timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS)
        ended = _run_end(done)
        if not _write(
            job,
            owner,
            {"lease_expires_at": lease},
            [done, (step, start)],
            unless_cancelled=True,
            run_end=ended,
            run_start=step,
        ):
            if not _holds_lease(job, owner):
                _lost(done[0] if done else None, owner)
                return "lease-lost"
            if not _finish(job, owner, JobStatus.CANCELLED, "Cancelled by a user.", [done], ended):
                return "lease-lost"
            return "cancelled"
        done = None
        heartbeat = Heartbeat(job_id=job.pk, owner=owner, lease_seconds=settings.JOB_LEASE_SECONDS)
        job.lease = heartbeat
        try:
            with heartbeat:
                output = fns[step.name](job, step)
            if heartbeat.lost.is_set():
                _lost(step, owner)
                return "lease-lost"
        except StepWait as wait:
            _wait(job, step, owner, wait)
            return "waiting"
        except Exception as exc:  # noqa: BLE001 - any failure is recorded on the step
            if heartbeat.lost.is_set():
                # Stopped because another worker owns the job now: not this run's to record
                # on the step, only on its own run.
                _lost(step, owner)
                return "lease-lost"
            error = str(exc) or type(exc).__name__
            if is_transient(exc) and job.attempts < job.max_attempts:
                # AWS throttled or erred past botocore's retries: try this step again
                # after a backoff (2, 4, 8, 16 s ...), spending one of the job's attempts,
                # rather than failing a tenant for a bad minute of AWS.
                retry_in = min(60, 2**job.attempts)
                logger.info("Job %s step %s: %s; again in %s s", job.pk, step.name, exc, retry_in)
                wait = StepWait(f"{error[:200]}: trying again in {retry_in} s", retry_in=retry_in)
                _wait(job, step, owner, wait, give_back=False)
                return "waiting"
            logger.warning("Job %s step %s failed: %s", job.pk, step.name, exc)
            failed = {"status": StepStatus.FAILED, "error": error, "finished_at": timezone.now()}
            if not _finish(
                job,
                owner,
                JobStatus.FAILED,
                f"{step.label}: {error}",
                [(step, failed)],
                (step, "failed", failed["finished_at"]),
            ):
                return "lease-lost"
            return "failed"
        done = _succeeded(step, output)
        job.step_outputs[step.name] = done[1].get("output", step.output)
    if not _finish(job, owner, JobStatus.SUCCEEDED, steps=[done], run_end=_run_end(done)):
        return "lease-lost"
    return "succeeded"


def _run_end(done: tuple[JobStep, dict[str, Any]] | None) -> tuple[JobStep, str, Any] | None:
    """The end of this worker's run of the step that just succeeded, for the next write."""
    if done is None:
        return None
    step, fields = done
    return step, "succeeded", fields["finished_at"]


def _lost(step: JobStep | None, owner: str) -> None:
    """Close this worker's run of ``step``: it stopped because it lost the lease. Written
    whatever the lease says (the run is this worker's own record)."""
    if step is not None:
        StepRun.objects.filter(
            step=step, owner=owner, started_at=getattr(step, "run_started", None)
        ).update(ended_at=timezone.now(), outcome="lease-lost")


def _wait(job: Job, step: JobStep, owner: str, wait: StepWait, *, give_back: bool = True) -> None:
    now = timezone.now()
    requeue = {
        "status": JobStatus.QUEUED,
        "run_after": now + timedelta(seconds=wait.retry_in),
        "lease_owner": "",
        "lease_expires_at": None,
        # A planned wait is not a failed attempt: give the attempt back. A transient
        # failure keeps it, so a step AWS keeps refusing fails in the end.
        "attempts": job.attempts - 1 if give_back else job.attempts,
        "dispatched_at": now,
    }
    waiting = {"status": StepStatus.WAITING, "detail": wait.detail[:255]}
    if _write(job, owner, requeue, [(step, waiting)], run_end=(step, "waiting", now)):
        job_send_on_commit(job.pk, countdown=wait.retry_in)
    else:
        _lost(step, owner)  # the job was handed on meanwhile: close this run all the same


def _fail_unfinished_steps(job: Job, error: str) -> None:
    job.steps.filter(status__in=[StepStatus.RUNNING, StepStatus.WAITING]).update(
        status=StepStatus.FAILED, error=error, finished_at=timezone.now()
    )

"""Durable jobs: create and dispatch on commit, claim by conditional update, run steps
under a lease, re-queue what a dead worker left behind.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import zlib
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from opsconsole.jobs.models import FINISHED, Job, JobStatus, JobStep, StepStatus
from opsconsole.jobs.registry import StepWait, get_kind

logger = logging.getLogger(__name__)

ACTIVE = [JobStatus.QUEUED, JobStatus.RUNNING]


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- create and dispatch ---------------------------------------------------------------


def job_create(
    *,
    kind: str,
    subject_type: str = "",
    subject_id: str = "",
    lock_key: str = "",
    params: dict[str, Any] | None = None,
    created_by=None,
    unique: bool = True,
) -> Job:
    """Save a job and its steps, and send its task once the transaction commits.

    With ``unique`` an unfinished job of the same kind and subject is returned instead of a
    second one: a double submit makes one job.
    """
    job_kind = get_kind(kind)
    with transaction.atomic():
        if unique and subject_id:
            _lock(f"job-create:{kind}:{subject_type}:{subject_id}")
            existing = Job.objects.filter(
                kind=kind, subject_type=subject_type, subject_id=subject_id, status__in=ACTIVE
            ).first()
            if existing:
                return existing
        job = Job.objects.create(
            kind=kind,
            subject_type=subject_type,
            subject_id=subject_id,
            lock_key=lock_key or (f"{subject_type}:{subject_id}" if subject_id else ""),
            params=params or {},
            created_by=created_by if created_by and created_by.is_authenticated else None,
            max_attempts=settings.JOB_MAX_ATTEMPTS,
        )
        JobStep.objects.bulk_create(
            JobStep(job=job, position=i, name=s.name, label=s.label)
            for i, s in enumerate(job_kind.steps, start=1)
        )
        job_dispatch(job)
    return job


def job_dispatch(job: Job, *, countdown: int = 0) -> None:
    """Send the job's task after the current transaction commits."""
    job_id = job.pk

    def send() -> None:
        from opsconsole.jobs.tasks import job_run

        Job.objects.filter(pk=job_id).update(dispatched_at=timezone.now())
        try:
            job_run.apply_async(args=[job_id], countdown=countdown or None)
        except Exception:  # noqa: BLE001 - the broker is down: the sweep sends it again
            logger.exception("Could not send job %s to the broker; the sweep will retry", job_id)

    transaction.on_commit(send)


def job_retry(job: Job) -> bool:
    """Queue a failed or cancelled job again, resuming from its first unfinished step."""
    with transaction.atomic():
        changed = Job.objects.filter(
            pk=job.pk, status__in=[JobStatus.FAILED, JobStatus.CANCELLED]
        ).update(
            status=JobStatus.QUEUED,
            error="",
            attempts=0,
            run_after=None,
            finished_at=None,
            cancel_requested=False,
        )
        if not changed:
            return False
        job.steps.filter(status__in=[StepStatus.FAILED, StepStatus.RUNNING]).update(
            status=StepStatus.PENDING, error="", detail="", finished_at=None
        )
        job.refresh_from_db()
        job_dispatch(job)
    return True


def job_cancel(job: Job) -> bool:
    """Cancel a queued job now; a running one stops after its current step."""
    now = timezone.now()
    if Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELLED, finished_at=now, error="Cancelled before it ran."
    ):
        return True
    return bool(
        Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(cancel_requested=True)
    )


# --- claim and run ---------------------------------------------------------------------


def _lock(key: str) -> None:
    """A transaction-scoped PostgreSQL advisory lock on ``key``."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [zlib.crc32(key.encode()) - 2**31])


def job_claim(job_id: int, *, owner: str) -> bool:
    """Take the job if it is queued, due, and nothing else holds its subject's lease.

    The UPDATE ... WHERE status = queued lets exactly one worker win; the advisory lock on
    the lock key makes the "no other running job on this subject" check and the claim one
    step for every worker.
    """
    return _claim(job_id, owner=owner) is not None


def _claim(job_id: int, *, owner: str) -> Job | None:
    """``job_claim``, returning the claimed job as the claim left it (else None).

    The row is read FOR UPDATE, so nothing changes it between the read and the claim and
    the copy in memory is the row: the worker does not read it again.
    """
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return None
        if job.lock_key:
            _lock(f"job-lease:{job.lock_key}")
            busy = (
                Job.objects.filter(
                    lock_key=job.lock_key, status=JobStatus.RUNNING, lease_expires_at__gt=now
                )
                .exclude(pk=job_id)
                .exists()
            )
            if busy:
                return None
        lease_expires_at = now + timedelta(seconds=settings.JOB_LEASE_SECONDS)
        claimed = (
            Job.objects.filter(pk=job_id, status=JobStatus.QUEUED)
            .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
            .update(
                status=JobStatus.RUNNING,
                lease_owner=owner,
                lease_expires_at=lease_expires_at,
                attempts=F("attempts") + 1,
                started_at=now,
                run_after=None,
            )
        )
    if claimed != 1:
        return None
    job.status, job.lease_owner, job.lease_expires_at = JobStatus.RUNNING, owner, lease_expires_at
    job.attempts, job.started_at, job.run_after = job.attempts + 1, now, None
    return job


def _renew_lease(job: Job, owner: str) -> bool:
    """Extend the lease unless a cancel was requested: one UPDATE per step.

    False when the lease is lost or the job is to be cancelled (``_holds_lease`` tells
    which); the cancel is rare, so the common step costs one query, not two.
    """
    return bool(
        Job.objects.filter(
            pk=job.pk, status=JobStatus.RUNNING, lease_owner=owner, cancel_requested=False
        ).update(lease_expires_at=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS))
    )


def _holds_lease(job: Job, owner: str) -> bool:
    return Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, lease_owner=owner).exists()


def _finish(job: Job, owner: str, status: str, error: str = "") -> None:
    fields = {
        "status": status,
        "finished_at": timezone.now(),
        "error": error,
        "lease_owner": "",
        "lease_expires_at": None,
    }
    if Job.objects.filter(pk=job.pk, lease_owner=owner).update(**fields):
        # The row is what we wrote: no need to read it back.
        for name, value in fields.items():
            setattr(job, name, value)
    else:
        job.refresh_from_db()
    kind = get_kind(job.kind)
    hook = kind.on_success if status == JobStatus.SUCCEEDED else kind.on_failure
    if hook is not None and status != JobStatus.CANCELLED:
        hook(job)


def job_execute(job_id: int, *, owner: str | None = None) -> str:
    """Run a job's unfinished steps in order. Returns what happened, for the task's log.

    Safe to call twice and from two workers: only the claimer runs, and every step is
    idempotent, so a resumed job re-checks rather than re-creates.
    """
    owner = owner or worker_id()
    job = _claim(job_id, owner=owner)
    if job is None:
        job = Job.objects.filter(pk=job_id).first()
        if job is None or job.is_finished or job.status == JobStatus.RUNNING:
            return "not-claimed"
        return "busy"  # queued, but not due yet or its subject is leased elsewhere

    if job.attempts > job.max_attempts:
        _fail_unfinished_steps(job, "Gave up: the job's worker was lost too many times.")
        _finish(job, owner, JobStatus.FAILED, f"Gave up after {job.attempts - 1} attempts.")
        return "gave-up"

    kind = get_kind(job.kind)
    fns = {s.name: s.fn for s in kind.steps}
    for step in job.steps.exclude(status__in=[StepStatus.SUCCEEDED, StepStatus.SKIPPED]):
        if not _renew_lease(job, owner):
            if not _holds_lease(job, owner):
                return "lease-lost"
            job.cancel_requested = True
        if job.cancel_requested:
            _finish(job, owner, JobStatus.CANCELLED, "Cancelled by a user.")
            return "cancelled"
        if settings.JOB_STEP_DELAY_SECONDS:
            time.sleep(settings.JOB_STEP_DELAY_SECONDS)
        step.status = StepStatus.RUNNING
        step.started_at = step.started_at or timezone.now()
        step.error = ""
        step.save(update_fields=["status", "started_at", "error"])
        try:
            output = fns[step.name](job, step)
        except StepWait as wait:
            _wait(job, step, owner, wait)
            return "waiting"
        except Exception as exc:  # noqa: BLE001 - any failure is recorded on the step
            logger.warning("Job %s step %s failed: %s", job.pk, step.name, exc)
            step.status = StepStatus.FAILED
            step.error = str(exc) or type(exc).__name__
            step.finished_at = timezone.now()
            step.save(update_fields=["status", "error", "finished_at"])
            _finish(job, owner, JobStatus.FAILED, f"{step.label}: {step.error}")
            return "failed"
        step.status = StepStatus.SUCCEEDED
        step.finished_at = timezone.now()
        step.detail = ""
        if output:
            step.output = {**step.output, **output}
        step.save(update_fields=["status", "finished_at", "detail", "output"])
    _finish(job, owner, JobStatus.SUCCEEDED)
    return "succeeded"


def _wait(job: Job, step: JobStep, owner: str, wait: StepWait) -> None:
    step.status = StepStatus.WAITING
    step.detail = wait.detail[:255]
    step.save(update_fields=["status", "detail"])
    with transaction.atomic():
        # A planned wait is not a failed attempt: give the attempt back.
        Job.objects.filter(pk=job.pk, lease_owner=owner).update(
            status=JobStatus.QUEUED,
            run_after=timezone.now() + timedelta(seconds=wait.retry_in),
            lease_owner="",
            lease_expires_at=None,
            attempts=F("attempts") - 1,
        )
        job_dispatch(job, countdown=wait.retry_in)


def _fail_unfinished_steps(job: Job, error: str) -> None:
    job.steps.filter(status__in=[StepStatus.RUNNING, StepStatus.WAITING]).update(
        status=StepStatus.FAILED, error=error, finished_at=timezone.now()
    )


# --- the sweep -------------------------------------------------------------------------


def jobs_requeue_expired() -> dict[str, int]:
    """Re-queue jobs whose worker died (lease expired) and re-send lost messages."""
    now = timezone.now()
    requeued = 0
    for job in Job.objects.filter(status=JobStatus.RUNNING, lease_expires_at__lt=now):
        with transaction.atomic():
            changed = Job.objects.filter(
                pk=job.pk, status=JobStatus.RUNNING, lease_expires_at__lt=now
            ).update(status=JobStatus.QUEUED, lease_owner="", lease_expires_at=None)
            if changed:
                job.steps.filter(status=StepStatus.RUNNING).update(
                    status=StepStatus.PENDING, detail="Interrupted: its worker was lost."
                )
                job_dispatch(job)
                requeued += 1
    stale = now - timedelta(seconds=settings.JOB_REDISPATCH_AFTER_SECONDS)
    resent = 0
    for job in (
        Job.objects.filter(status=JobStatus.QUEUED)
        .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale))
    ):
        with transaction.atomic():
            job_dispatch(job)
        resent += 1
    return {"requeued": requeued, "resent": resent}


def jobs_for_subject(subject_type: str, subject_id: str, limit: int = 10):
    return Job.objects.filter(subject_type=subject_type, subject_id=subject_id)[:limit]


__all__ = [
    "FINISHED",
    "job_cancel",
    "job_claim",
    "job_create",
    "job_dispatch",
    "job_execute",
    "job_retry",
    "jobs_requeue_expired",
]

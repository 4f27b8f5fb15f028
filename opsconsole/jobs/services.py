"""Durable jobs: create a job and its steps, send its task once the transaction commits,
retry and cancel it, and re-queue what a dead worker left behind (the sweep).

Running a job (the claim, the steps under a lease, the end) is ``opsconsole.jobs.runner``.
"""

from __future__ import annotations

import logging
import zlib
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from opsconsole.jobs.models import FINISHED, Job, JobStatus, JobStep, StepStatus
from opsconsole.jobs.registry import get_kind

logger = logging.getLogger(__name__)

ACTIVE = [JobStatus.QUEUED, JobStatus.RUNNING]


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
    with transaction.atomic():
        if unique and subject_id:
            _lock(f"job-create:{kind}:{subject_type}:{subject_id}")
            existing = Job.objects.filter(
                kind=kind, subject_type=subject_type, subject_id=subject_id, status__in=ACTIVE
            ).first()
            if existing:
                return existing
        [job] = job_create_many(
            kind=kind,
            subjects=[(subject_type, subject_id, params or {})],
            lock_key=lock_key,
            created_by=created_by,
        )
    return job


def job_create_many(
    *,
    kind: str,
    subjects: list[tuple[str, str, dict[str, Any]]],
    lock_key: str = "",
    created_by=None,
) -> list[Job]:
    """Save one job per ``(subject_type, subject_id, params)`` in three statements, and
    send their tasks once the transaction commits (a rollout starts dozens at a time).

    ``dispatched_at`` is written with the row: the send follows the commit, and a send
    that fails clears it again so the sweep re-sends at once.
    """
    job_kind = get_kind(kind)
    now = timezone.now()
    user = created_by if created_by and created_by.is_authenticated else None
    # All or nothing; inside a caller's transaction (the orchestrator's) that one is enough.
    with transaction.atomic(savepoint=False):
        jobs = Job.objects.bulk_create(
            Job(
                kind=kind,
                subject_type=subject_type,
                subject_id=subject_id,
                lock_key=lock_key or (f"{subject_type}:{subject_id}" if subject_id else ""),
                params=params,
                created_by=user,
                max_attempts=settings.JOB_MAX_ATTEMPTS,
                dispatched_at=now,
            )
            for subject_type, subject_id, params in subjects
        )
        JobStep.objects.bulk_create(
            JobStep(job=job, position=i, name=s.name, label=s.label)
            for job in jobs
            for i, s in enumerate(job_kind.steps, start=1)
        )
        for job in jobs:
            job_send_on_commit(job.pk)
    return jobs


def job_dispatch(job: Job, *, countdown: int = 0) -> None:
    """Mark the job sent and send its task after the current transaction commits."""
    job_id = job.pk

    def mark() -> None:
        Job.objects.filter(pk=job_id).update(dispatched_at=timezone.now())

    transaction.on_commit(mark)
    job_send_on_commit(job_id, countdown=countdown)


def job_send_on_commit(job_id: int, *, countdown: int = 0) -> None:
    """Send the task after the commit; a failed send clears ``dispatched_at``."""

    def send() -> None:
        from opsconsole.jobs.tasks import job_run

        try:
            job_run.apply_async(args=[job_id], countdown=countdown or None)
        except Exception:  # noqa: BLE001 - the broker is down: the sweep sends it again
            logger.exception("Could not send job %s to the broker; the sweep will retry", job_id)
            Job.objects.filter(pk=job_id).update(dispatched_at=None)

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
        # The step starts anew (a step may judge what happened "since it started").
        job.steps.filter(status__in=[StepStatus.FAILED, StepStatus.RUNNING]).update(
            status=StepStatus.PENDING, error="", detail="", started_at=None, finished_at=None
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


def _lock(key: str) -> None:
    """A transaction-scoped PostgreSQL advisory lock on ``key``."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [zlib.crc32(key.encode()) - 2**31])


def step_output(job: Job, name: str) -> dict[str, Any]:
    """What step ``name`` of ``job`` recorded: from the run in memory, else the row."""
    outputs = getattr(job, "step_outputs", None)
    if outputs is not None:
        return outputs.get(name) or {}
    return job.steps.filter(name=name).values_list("output", flat=True).first() or {}


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
    "job_create",
    "job_create_many",
    "job_dispatch",
    "job_retry",
    "job_send_on_commit",
    "jobs_requeue_expired",
    "step_output",
]

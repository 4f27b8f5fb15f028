"""Jobs: what a worker does for a tenant or a rollout, step by step. A CI script follows
an onboarding or a repair here until ``finished`` is true."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from django.urls import reverse
from ninja import Router, Schema

from opsconsole.api.errors import ApiError
from opsconsole.api.schemas import answers
from opsconsole.jobs.models import Job
from tenants.scope import visible_jobs

router = Router(tags=["jobs"])


class StepOut(Schema):
    name: str
    label: str
    status: str
    detail: str
    error: str
    started_at: datetime | None
    finished_at: datetime | None


class JobOut(Schema):
    id: int
    kind: str
    status: str
    finished: bool
    subject_type: str
    subject_id: str
    attempts: int
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    url: str


class JobDetailOut(JobOut):
    steps: list[StepOut]


def job_out(job: Job) -> dict:
    return {
        "id": job.pk,
        "kind": job.kind,
        "status": job.status,
        "finished": job.is_finished,
        "subject_type": job.subject_type,
        "subject_id": job.subject_id,
        "attempts": job.attempts,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "url": reverse("api:job_get", args=[job.pk]),
    }


@router.get("/{job_id}", response=answers({200: JobDetailOut}))
def job_get(request: HttpRequest, job_id: int):
    job = visible_jobs(request.user).filter(pk=job_id).prefetch_related("steps").first()
    if job is None:
        raise ApiError(404, "Not found.")
    return {**job_out(job), "steps": list(job.steps.all())}

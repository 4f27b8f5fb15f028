"""A tenant's deployment history, for the health page and the charts' deploy markers.

A deployment is a job that puts a release on the tenant: onboarding and reconcile jobs,
and the rollouts' per-tenant ``tenant_deploy`` jobs. Reading jobs (not the deployments
app's rows) keeps tenants free of any dependency on deployments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from opsconsole.jobs.models import Job, JobStatus
from tenants.models import Tenant

DEPLOY_JOB_KINDS = ("tenant_provision", "tenant_reconcile", "tenant_deploy", "tenant_alias_back")


@dataclass(frozen=True)
class DeployEvent:
    at: datetime  # finished, or created while it runs
    label: str
    status: str
    release: str
    by: str
    job_id: int


def deployment_history(tenant: Tenant, *, limit: int = 10) -> list[DeployEvent]:
    jobs = (
        Job.objects.filter(subject_type="tenant", subject_id=tenant.slug, kind__in=DEPLOY_JOB_KINDS)
        .select_related("created_by")
        .order_by("-created_at", "-id")[:limit]
    )
    return [
        DeployEvent(
            at=job.finished_at or job.created_at,
            label=job.label,
            status=job.status,
            release=str(job.params.get("release", "")),
            by=str(job.created_by or "system"),
            job_id=job.pk,
        )
        for job in jobs
    ]


def deploy_times(slugs: Iterable[str], *, since: datetime) -> dict[str, list[datetime]]:
    """When each tenant's deployments finished since ``since`` (one query for all)."""
    rows = Job.objects.filter(
        subject_type="tenant",
        subject_id__in=list(slugs),
        kind__in=DEPLOY_JOB_KINDS,
        status=JobStatus.SUCCEEDED,
        finished_at__gte=since,
    ).values_list("subject_id", "finished_at")
    out: dict[str, list[datetime]] = {}
    for slug, finished in rows:
        out.setdefault(slug, []).append(finished)
    return out

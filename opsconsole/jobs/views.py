from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django_htmx.http import HttpResponseStopPolling

from opsconsole.accounts.access import POST, role_required
from opsconsole.accounts.models import Role
from opsconsole.audit.services import audit_record
from opsconsole.core.urls_util import safe_next
from opsconsole.jobs.models import Job, StepRun
from opsconsole.jobs.services import job_cancel, job_retry
from tenants.scope import job_visible

# A job of a tenant follows its tenant; a scoped user sees no fleet-wide job (tenants.scope).
_VIEWER = role_required(Role.VIEWER, visible=job_visible)
_OPERATOR = role_required(Role.OPERATOR, visible=job_visible, methods=POST)


@_VIEWER
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("created_by"), pk=job_id)
    # Every run of every step (a step runs again after a lost worker or a retry): which
    # worker, when, how it ended. One query, shown only on this page.
    runs = StepRun.objects.filter(step__job=job).select_related("step").order_by("started_at")
    return render(request, "jobs/job_detail.html", {"job": job, "runs": runs})


@_VIEWER
def job_progress(request: HttpRequest, job_id: int) -> HttpResponse:
    """The live steps partial. Once the job has ended, answer 286 so htmx stops polling."""
    job = get_object_or_404(Job, pk=job_id)
    response = render(request, "jobs/job_progress.html#progress", {"job": job})
    if job.is_finished:
        stop = HttpResponseStopPolling(response.content)
        # The page around the partial (a tenant's status, its resources) changed with the
        # job: reload it once. The reloaded page renders the partial without polling.
        stop["HX-Refresh"] = "true"
        return stop
    return response


@_OPERATOR
def job_retry_view(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=job_id)
    if job_retry(job):
        audit_record(request=request, action="job.retry", obj=job)
        messages.success(request, f"{job} queued again; it resumes from the failed step.")
    else:
        messages.warning(request, f"{job} is {job.status}: only failed or cancelled jobs retry.")
    return redirect(safe_next(request, job_detail_url(job)))


@_OPERATOR
def job_cancel_view(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=job_id)
    if job_cancel(job):
        audit_record(request=request, action="job.cancel", obj=job)
        messages.info(request, f"{job}: cancel requested.")
    else:
        messages.warning(request, f"{job} has already ended.")
    return redirect(safe_next(request, job_detail_url(job)))


def job_detail_url(job: Job) -> str:
    return reverse("jobs:detail", args=[job.pk])

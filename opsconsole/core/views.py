from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from opsconsole.accounts.access import operator_required, viewer_required
from opsconsole.audit.services import audit_record
from opsconsole.core.baseline import ACCOUNT_CHECK_STEPS
from opsconsole.core.health import health_report
from opsconsole.jobs.models import Job
from opsconsole.jobs.services import job_create


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


@viewer_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("tenants:list")


@viewer_required
def account(request: HttpRequest) -> HttpResponse:
    """The AWS account baseline tenants are built on, as last checked."""
    last = Job.objects.filter(kind="account_check").prefetch_related("steps").first()
    return render(
        request,
        "core/account.html",
        {
            "last_check": last,
            "checks": [label for _, label, _ in ACCOUNT_CHECK_STEPS],
            "baseline": settings.BASELINE,
        },
    )


@require_POST
@operator_required
def account_check(request: HttpRequest) -> HttpResponse:
    job = job_create(
        kind="account_check",
        subject_type="account",
        subject_id=settings.AWS_REGION,
        created_by=request.user,
    )
    audit_record(request=request, action="account.check", obj=job)
    messages.info(request, "Checking the AWS account.")
    return redirect("account")

from django.conf import settings
from django.contrib import messages
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from opsconsole.accounts.access import POST, role_required, viewer_required
from opsconsole.accounts.models import Role
from opsconsole.audit.services import audit_record
from opsconsole.core.baseline import ACCOUNT_CHECK_STEPS
from opsconsole.core.getting_started import getting_started_context
from opsconsole.core.glossary import TERMS
from opsconsole.core.health import health_report
from opsconsole.jobs.models import Job
from opsconsole.jobs.services import job_create
from tenants.scope import refuse_scoped, scope_describe, user_is_scoped, visible_jobs


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Up or down for anyone (load balancers, uptime checks); which dependency failed, and
    why, only for a console member: error texts name hosts and ports."""
    report = health_report()
    status = 200 if report["status"] == "ok" else 503
    try:
        member = request.user.is_authenticated and request.user.is_console_member
    except DatabaseError:
        # Who asks is in the database: while it is down, everyone gets the short answer.
        member = False
    if not member:
        return JsonResponse({"status": report["status"]}, status=status)
    return JsonResponse(report, status=status)


@viewer_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("tenants:list")


@viewer_required
def getting_started(request: HttpRequest) -> HttpResponse:
    """Onboarding a tenant and deploying a release, walked through with live links."""
    return render(request, "core/getting_started.html", getting_started_context(request.user))


@viewer_required
def glossary(request: HttpRequest) -> HttpResponse:
    return render(request, "core/glossary.html", {"terms": TERMS.values()})


@viewer_required
def account(request: HttpRequest) -> HttpResponse:
    """The AWS account baseline tenants are built on, as last checked."""
    # The account check is the fleet's job: hidden from a user who sees some tenants only.
    last = visible_jobs(request.user, Job.objects.filter(kind="account_check"))
    last = last.prefetch_related("steps").first()
    return render(
        request,
        "core/account.html",
        {
            "last_check": last,
            "checks": [label for _, label, _ in ACCOUNT_CHECK_STEPS],
            "baseline": settings.BASELINE,
            "my_scope": scope_describe(request.user),
            "scoped": user_is_scoped(request.user),
        },
    )


@role_required(Role.OPERATOR, methods=POST)
def account_check(request: HttpRequest) -> HttpResponse:
    refuse_scoped(request.user, "The account check")
    job = job_create(
        kind="account_check",
        subject_type="account",
        subject_id=settings.AWS_REGION,
        created_by=request.user,
    )
    audit_record(request=request, action="account.check", obj=job)
    messages.info(request, "Checking the AWS account.")
    return redirect("account")

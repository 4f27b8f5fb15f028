import uuid

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.cache import never_cache

from opsconsole.accounts.access import POST, admin_required, role_required, viewer_required
from opsconsole.accounts.models import Role
from opsconsole.aws.errors import AwsError
from opsconsole.jobs.models import Job
from tenants import secret_hold, services
from tenants.forms import TenantConfigForm, TenantOnboardForm, release_for
from tenants.health.fleet import FLEET_SORTS, fleet_table
from tenants.health.fleet_store import fleet_watch
from tenants.health.status import STATUSES
from tenants.models import Tenant, TenantStatus
from tenants.onboarding import onboarding_plan
from tenants.plan_contract import contract_sections
from tenants.provisioning.function_config import effective_function
from tenants.resources import console_url
from tenants.scope import refuse_scoped, tenant_slug_visible, visible_tenant_or_404, visible_tenants

SORTS = {
    "slug": "slug",
    "status": "status",
    "ring": "ring",
    "release": "current_release",
    "region": "region",
    "created": "-created_at",
}


def get_tenant_for_user(request: HttpRequest, slug: str) -> Tenant:
    """The tenant, if this user may see it (tenants.scope); else 404. Role checks ran in
    the decorator already (an outsider got 404 there)."""
    return visible_tenant_or_404(request.user, slug=slug)


@viewer_required
def tenant_list(request: HttpRequest) -> HttpResponse:
    """The fleet: every tenant with its health, error rate and p95 over the last hour.

    Flat in SQL however many tenants there are: the database counts, sorts, filters and
    pages (status counts, health counts, the groups, one page of rows). No AWS call: the
    numbers are what a worker left in the rows and the cache, with their age; the rows
    shown are marked so the worker fetches their metrics.
    """
    tenants = visible_tenants(request.user)
    status = request.GET.get("status", "")
    query = request.GET.get("q", "").strip()
    sort = request.GET.get("sort", "slug")
    health = request.GET.get("health", "")
    if health not in STATUSES:
        health = ""
    if sort not in SORTS and sort not in FLEET_SORTS:
        sort = "slug"
    if status:
        tenants = tenants.filter(status=status)
    else:
        tenants = tenants.exclude(status=TenantStatus.OFFBOARDED)
    if query:
        tenants = tenants.filter(Q(slug__icontains=query) | Q(name__icontains=query))
    tenants = tenants.order_by(SORTS.get(sort, "slug"), "slug")
    counts = dict(
        visible_tenants(request.user).values_list("status").annotate(n=Count("id")).order_by()
    )
    table = fleet_table(tenants, health=health, sort=sort)
    page = Paginator(table, settings.HEALTH_FLEET_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    fleet_watch([row.slug for row in rows])
    return render(
        request,
        "tenants/tenant_list.html",
        {
            "tenants": rows,
            "page": page,
            "fleet": table,
            "status": status,
            "q": query,
            "sort": sort,
            "health": health,
            "healths": STATUSES,
            "counts": counts,
            "statuses": TenantStatus.choices,
            "any_tenant": bool(counts),
        },
    )


@never_cache  # a page with a secret input: no-store
@admin_required
def tenant_onboard(request: HttpRequest) -> HttpResponse:
    # A new tenant would be outside a scoped admin's own scope (the API refuses it too).
    refuse_scoped(request.user, "Onboarding")
    if request.method != "POST":
        form = TenantOnboardForm(initial={"form_token": uuid.uuid4().hex})
        return render(request, "tenants/tenant_onboard.html", {"form": form})
    # The same form submitted twice (a double click, a reload): show what the first made.
    already = services.tenant_for_token(request.POST.get("form_token", ""))
    if already is not None:
        return redirect("tenants:detail", slug=already.slug)
    data, held = secret_hold.form_data_and_held(request)
    form = TenantOnboardForm(data, held_secrets=held)
    context: dict = {"form": form}
    if form.is_valid():
        found = onboarding_plan(form.build_tenant())
        context.update(
            planned=found.planned,
            sections=found.sections,
            release=found.release,
            cost_lines=found.cost_lines,
            total=found.total,
        )
        if request.POST.get("action") == "create":
            try:
                tenant, job = services.tenant_onboard(form=form, request=request)
            except AwsError as exc:
                form.add_error(
                    None, f"AWS refused the secret variables, nothing was created: {exc}"
                )
            else:
                secret_hold.form_secrets_forget(request, form)
                messages.success(request, f"Onboarding {tenant.slug}: its steps run below.")
                return redirect("tenants:detail", slug=tenant.slug)
    secret_hold.form_secrets_keep(form, user_id=request.user.pk)
    return render(request, "tenants/tenant_onboard.html", context)


@viewer_required
def tenant_detail(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = get_tenant_for_user(request, slug)
    jobs = list(
        Job.objects.filter(subject_type="tenant", subject_id=tenant.slug)
        .select_related("created_by")
        .prefetch_related("steps")[:10]
    )
    resources = [
        (r, console_url(r)) for r in tenant.resources.exclude(kind__in=["snapshot", "dump"])
    ]
    backups = [(r, console_url(r)) for r in tenant.resources.filter(kind__in=["snapshot", "dump"])]
    drift_job = next((j for j in jobs if j.kind == "tenant_drift_check"), None)
    drift = None
    if drift_job and drift_job.status == "succeeded":
        drift = drift_job.steps.all()[0].output
    release = release_for(tenant.desired_release or tenant.current_release)
    return render(
        request,
        "tenants/tenant_detail.html",
        {
            "tenant": tenant,
            "release": release,
            # Memory and timeout the tenant runs with: its own, else its release's.
            "function": effective_function(tenant, release) if release else None,
            "sections": contract_sections(tenant, release),
            "jobs": jobs,
            "active_job": next((j for j in jobs if not j.is_finished), None),
            "resources": resources,
            "backups": backups,
            "drift_job": drift_job,
            "drift": drift,
            "needs_reconcile": tenant.applied_generation < tenant.config_generation,
        },
    )


@never_cache  # a page with a secret input: no-store
@role_required(Role.ADMIN, visible=tenant_slug_visible)
def tenant_edit(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = get_tenant_for_user(request, slug)
    if request.method != "POST":
        form = TenantConfigForm(instance=tenant, initial={"form_token": uuid.uuid4().hex})
        return render(request, "tenants/tenant_edit.html", {"tenant": tenant, "form": form})
    data, held = secret_hold.form_data_and_held(request)
    form = TenantConfigForm(data, instance=tenant, held_secrets=held)
    if form.is_valid():
        try:
            services.tenant_update_config(tenant=tenant, form=form, request=request)
        except services.TenantActionError as exc:
            form.add_error(None, str(exc))
        except AwsError as exc:
            form.add_error(None, f"AWS refused the secret variables, nothing was changed: {exc}")
        else:
            secret_hold.form_secrets_forget(request, form)
            messages.success(request, "Saved. A reconcile job applies it to AWS.")
            return redirect("tenants:detail", slug=tenant.slug)
    secret_hold.form_secrets_keep(form, user_id=request.user.pk)
    return render(request, "tenants/tenant_edit.html", {"tenant": tenant, "form": form})


# What a confirmation says before an action that stops traffic or rewrites a stack.
_CONFIRM = {
    "suspend": (
        "Suspend {slug}?",
        "Its function's reserved concurrency goes to 0: every request to its API fails "
        "until someone presses Resume. Nothing is deleted.",
        "Suspend",
    ),
    "rotate": (
        "Rotate the database password of {slug}?",
        "A new password is staged in its secret, given to the database, then made current; "
        "the function's variables are rebuilt if they hold it. New connections made with "
        "the old password fail for the second between the last two.",
        "Rotate",
    ),
    "repair": (
        "Repair {slug}?",
        "A reconcile job brings every resource of the tenant back to its desired state: "
        "what drifted is changed back, what is missing is created again.",
        "Repair",
    ),
}


def _action(
    request: HttpRequest, slug: str, action, done: str, *, confirm: str = ""
) -> HttpResponse:
    tenant = get_tenant_for_user(request, slug)
    if confirm and request.POST.get("confirmed") != "yes":
        # A form posted without its dialog (no JavaScript, a script): ask on a page; going
        # back is a link, which changes nothing.
        title, body, label = _CONFIRM[confirm]
        return render(
            request,
            "core/confirm_page.html",
            {
                "id": f"confirm-{confirm}",
                "action": request.path,
                "title": title.format(slug=tenant.slug),
                "body": body,
                "confirm_label": label,
                "cancel_url": reverse("tenants:detail", args=[tenant.slug]),
            },
        )
    try:
        job = action(tenant=tenant, request=request)
    except services.TenantActionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            format_html(
                '{} <a href="{}">Job #{}</a> shows its steps.',
                done.format(slug=tenant.slug),
                reverse("jobs:detail", args=[job.pk]),
                job.pk,
            ),
        )
    return redirect("tenants:detail", slug=tenant.slug)


@role_required(Role.OPERATOR, visible=tenant_slug_visible, methods=POST)
def tenant_drift(request: HttpRequest, slug: str) -> HttpResponse:
    return _action(request, slug, services.tenant_check_drift, "Checking {slug} for drift.")


@role_required(Role.OPERATOR, visible=tenant_slug_visible, methods=POST)
def tenant_repair(request: HttpRequest, slug: str) -> HttpResponse:
    return _action(request, slug, services.tenant_repair, "Repairing {slug}.", confirm="repair")


@role_required(Role.ADMIN, visible=tenant_slug_visible, methods=POST)
def tenant_rotate_password(request: HttpRequest, slug: str) -> HttpResponse:
    return _action(
        request,
        slug,
        services.tenant_rotate_password,
        "Rotating the database password of {slug}.",
        confirm="rotate",
    )


@role_required(Role.ADMIN, visible=tenant_slug_visible, methods=POST)
def tenant_suspend(request: HttpRequest, slug: str) -> HttpResponse:
    return _action(
        request,
        slug,
        services.tenant_suspend,
        "Suspending {slug}: its function's reserved concurrency goes to 0.",
        confirm="suspend",
    )


@role_required(Role.ADMIN, visible=tenant_slug_visible, methods=POST)
def tenant_resume(request: HttpRequest, slug: str) -> HttpResponse:
    return _action(request, slug, services.tenant_resume, "Resuming {slug}.")


@role_required(Role.ADMIN, visible=tenant_slug_visible)
def tenant_offboard(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = get_tenant_for_user(request, slug)
    error = ""
    if request.method == "POST":
        try:
            services.tenant_offboard(
                tenant=tenant, confirm_slug=request.POST.get("confirm", ""), request=request
            )
        except services.TenantActionError as exc:
            error = str(exc)
        else:
            messages.warning(request, f"Offboarding {tenant.slug}: a final backup comes first.")
            return redirect("tenants:detail", slug=tenant.slug)
    return render(
        request,
        "tenants/tenant_offboard.html",
        {"tenant": tenant, "error": error},
        status=400 if error else 200,
    )

"""Who is notified: the tenant page's section (its forms post here) and the fleet topic's
page. Viewers see; admins change; outsiders get 404 (opsconsole.accounts.access)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from opsconsole.accounts.access import POST, role_required, viewer_required
from opsconsole.accounts.models import Role
from opsconsole.jobs.models import Job
from tenants import notifications
from tenants.models import AlarmSubscription, AlarmTopicChoice, Tenant, TenantStatus
from tenants.provisioning.alarm_topic import FLEET_TOPIC, fleet_regions
from tenants.scope import refuse_scoped, tenant_slug_visible, user_is_scoped, visible_tenants
from tenants.views import get_tenant_for_user

_TENANT_ADMIN = role_required(Role.ADMIN, visible=tenant_slug_visible, methods=POST)
_FLEET_ADMIN = role_required(Role.ADMIN, methods=POST)


def _back(tenant: Tenant | None) -> HttpResponse:
    if tenant is None:
        return redirect("tenants:fleet_notifications")
    return redirect(reverse("tenants:detail", args=[tenant.slug]) + "#notifications")


def _done(request: HttpRequest, tenant: Tenant | None, text: str, job: Job | None) -> None:
    if job is not None:
        text += " A job applies it to AWS."
    elif tenant is not None and tenant.alarm_topic != AlarmTopicChoice.TENANT:
        text += " It applies once the tenant's alarms go to its own topic."
    messages.success(request, text)


def _add(request: HttpRequest, tenant: Tenant | None) -> HttpResponse:
    try:
        row, job = notifications.add_subscription(
            tenant=tenant,
            protocol=request.POST.get("protocol", ""),
            endpoint=request.POST.get("endpoint", ""),
            request=request,
        )
    except notifications.NotificationError as exc:
        messages.error(request, str(exc))
    else:
        confirm = (
            " It receives nothing until the address confirms (SNS sends it a link)."
            if row.protocol == AlarmSubscription.Protocol.EMAIL
            else " The endpoint must confirm SNS's SubscriptionConfirmation first."
        )
        _done(request, tenant, f"Added {row.endpoint}.{confirm}", job)
    return _back(tenant)


def _remove(request: HttpRequest, tenant: Tenant | None, pk: int) -> HttpResponse:
    try:
        job = notifications.remove_subscription(tenant=tenant, subscription_id=pk, request=request)
    except notifications.NotificationError as exc:
        messages.error(request, str(exc))
    else:
        _done(request, tenant, "Removed.", job)
    return _back(tenant)


def _refresh(request: HttpRequest, tenant: Tenant | None) -> HttpResponse:
    try:
        notifications.refresh(tenant=tenant, request=request)
    except notifications.NotificationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Applying again and reading back who has confirmed.")
    return _back(tenant)


# --- one tenant --------------------------------------------------------------------------


@_TENANT_ADMIN
def tenant_topic(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = get_tenant_for_user(request, slug)
    try:
        notifications.set_alarm_topic(
            tenant=tenant, choice=request.POST.get("alarm_topic", ""), request=request
        )
    except notifications.NotificationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"Alarms notify: {tenant.get_alarm_topic_display()}. A job applies it."
        )
    return _back(tenant)


@_TENANT_ADMIN
def tenant_add(request: HttpRequest, slug: str) -> HttpResponse:
    return _add(request, get_tenant_for_user(request, slug))


@_TENANT_ADMIN
def tenant_remove(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    return _remove(request, get_tenant_for_user(request, slug), pk)


@_TENANT_ADMIN
def tenant_refresh(request: HttpRequest, slug: str) -> HttpResponse:
    return _refresh(request, get_tenant_for_user(request, slug))


# --- the fleet's topic -------------------------------------------------------------------


@viewer_required
def fleet(request: HttpRequest) -> HttpResponse:
    # A scoped user sees which of their tenants use the fleet's topic, not who else
    # (the fleet's subscribers are the operators' addresses) nor its jobs.
    scoped = user_is_scoped(request.user)
    rows = AlarmSubscription.objects.filter(tenant__isnull=True)
    users = visible_tenants(
        request.user,
        Tenant.objects.filter(alarm_topic=AlarmTopicChoice.FLEET).exclude(
            status=TenantStatus.OFFBOARDED
        ),
    )
    job = Job.objects.filter(
        subject_type=notifications.FLEET_SUBJECT[0], subject_id=notifications.FLEET_SUBJECT[1]
    ).first()
    if scoped:
        rows, job = rows.none(), None
    return render(
        request,
        "tenants/fleet_notifications.html",
        {
            "topic_name": FLEET_TOPIC,
            "regions": fleet_regions(),
            "subscriptions": [(r, notifications.subscription_status(r)) for r in rows],
            "tenants": users.order_by("slug"),
            "job": job,
            "protocols": AlarmSubscription.Protocol.choices,
        },
    )


@_FLEET_ADMIN
def fleet_add(request: HttpRequest) -> HttpResponse:
    refuse_scoped(request.user, "The fleet's topic")
    return _add(request, None)


@_FLEET_ADMIN
def fleet_remove(request: HttpRequest, pk: int) -> HttpResponse:
    refuse_scoped(request.user, "The fleet's topic")
    return _remove(request, None, pk)


@_FLEET_ADMIN
def fleet_refresh(request: HttpRequest) -> HttpResponse:
    refuse_scoped(request.user, "The fleet's topic")
    return _refresh(request, None)

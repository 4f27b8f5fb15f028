"""Webhook endpoints and their delivery logs: admins only (outsiders 404, others 403)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from opsconsole.accounts.access import POST, role_required
from opsconsole.accounts.models import Role
from opsconsole.webhooks import services
from opsconsole.webhooks.events import EVENTS
from opsconsole.webhooks.forms import EndpointForm
from opsconsole.webhooks.models import Delivery, DeliveryStatus, Endpoint
from opsconsole.webhooks.services import MAX_ATTEMPTS
from tenants.scope import refuse_scoped


def _fleet_only(request: HttpRequest, **_) -> None:
    # Events concern every tenant: not for an admin limited to some (tenants.scope).
    refuse_scoped(request.user, "Webhooks")


admin_only = role_required(Role.ADMIN, visible=_fleet_only)
admin_post = role_required(Role.ADMIN, visible=_fleet_only, methods=POST)
DELIVERIES_PER_PAGE = 50


@admin_only
def endpoint_list(request: HttpRequest) -> HttpResponse:
    endpoints = Endpoint.objects.annotate(
        pending=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.PENDING)),
        failed=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.FAILED)),
    )
    return render(request, "webhooks/endpoint_list.html", {"endpoints": endpoints})


@admin_only
def endpoint_create(request: HttpRequest) -> HttpResponse:
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        endpoint, secret = services.endpoint_create(**form.cleaned_data, request=request)
        # Rendered, not redirected: the secret is in this one answer and nowhere else.
        response = render(
            request, "webhooks/endpoint_created.html", {"endpoint": endpoint, "secret": secret}
        )
        response["Cache-Control"] = "no-store"
        return response
    return render(request, "webhooks/endpoint_form.html", {"form": form, "title": "New webhook"})


@admin_only
def endpoint_edit(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=endpoint_id)
    initial = {f: getattr(endpoint, f) for f in ("name", "url", "events", "active")}
    form = EndpointForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        services.endpoint_update(endpoint=endpoint, **form.cleaned_data, request=request)
        messages.success(request, f"Webhook {endpoint.name} saved.")
        return redirect("webhooks:detail", endpoint_id=endpoint.pk)
    return render(
        request,
        "webhooks/endpoint_form.html",
        {"form": form, "title": f"Edit {endpoint.name}", "endpoint": endpoint},
    )


@admin_only
def endpoint_detail(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=endpoint_id)
    status = request.GET.get("status", "")
    deliveries = endpoint.deliveries.all()
    if status in DeliveryStatus.values:
        deliveries = deliveries.filter(status=status)
    page = Paginator(deliveries, DELIVERIES_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "webhooks/endpoint_detail.html",
        {
            "endpoint": endpoint,
            "event_labels": [(e, EVENTS[e]) for e in endpoint.events if e in EVENTS],
            "page": page,
            "status": status,
            "statuses": DeliveryStatus.choices,
            "max_attempts": MAX_ATTEMPTS,
            "delete_lines": _delete_lines(endpoint),
        },
    )


def _delete_lines(endpoint: Endpoint) -> list[str]:
    return [
        f"Nothing more is sent to {endpoint.url}, and its delivery log is deleted.",
        "Its signing secret is scheduled for deletion in Secrets Manager.",
    ]


@admin_post
def endpoint_delete(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=endpoint_id)
    if request.POST.get("confirmed") != "yes":
        return render(
            request,
            "core/confirm_page.html",
            {
                "id": "confirm-delete",
                "action": request.path,
                "title": f"Delete the webhook {endpoint.name}?",
                "lines": _delete_lines(endpoint),
                "confirm_label": "Delete",
                "cancel_url": reverse("webhooks:detail", args=[endpoint.pk]),
            },
        )
    name = endpoint.name
    services.endpoint_delete(endpoint=endpoint, request=request)
    messages.success(request, f"Webhook {name} deleted.")
    return redirect("webhooks:list")


@admin_post
def endpoint_test(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=endpoint_id)
    try:
        delivery = services.send_test(endpoint=endpoint, request=request)
    except services.EndpointError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"Test event #{delivery.pk} queued: its row below shows how it went."
        )
    return redirect("webhooks:detail", endpoint_id=endpoint.pk)


@admin_only
def delivery_detail(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery.objects.select_related("endpoint"), pk=delivery_id)
    return render(
        request,
        "webhooks/delivery_detail.html",
        {
            "delivery": delivery,
            "endpoint": delivery.endpoint,
            "body": json.dumps(json.loads(services.body_of(delivery)), indent=2),
            "max_attempts": MAX_ATTEMPTS,
        },
    )


@admin_post
def delivery_retry(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery.objects.select_related("endpoint"), pk=delivery_id)
    try:
        if services.retry_now(delivery=delivery, request=request):
            messages.success(request, f"Delivery #{delivery.pk} is being sent again.")
        else:
            messages.error(request, f"Delivery #{delivery.pk} was delivered already.")
    except services.EndpointError as exc:
        messages.error(request, str(exc))
    if request.POST.get("back") == "delivery":
        return redirect("webhooks:delivery", delivery_id=delivery.pk)
    return redirect("webhooks:detail", endpoint_id=delivery.endpoint_id)

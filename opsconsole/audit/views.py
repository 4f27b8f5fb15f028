from datetime import datetime, time
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from opsconsole.accounts.access import viewer_required
from opsconsole.audit import display
from opsconsole.audit.models import AuditEvent
from tenants.scope import audit_scope_filter


def _day(value: str, *, end: bool) -> datetime | None:
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        return None
    return timezone.make_aware(datetime.combine(day, time.max if end else time.min))


@viewer_required
def audit_list(request: HttpRequest) -> HttpResponse:
    # A user limited to some tenants reads the entries about those tenants and their jobs
    # only (tenants.scope.audit_scope_filter); the filters' choices come from those too.
    mine = AuditEvent.objects.filter(audit_scope_filter(request.user))
    events = mine
    filters = {
        key: request.GET.get(key, "").strip()
        for key in ("actor", "action", "object_type", "object_id", "since", "until")
    }
    if filters["actor"]:
        events = events.filter(actor_name=filters["actor"])
    if filters["action"]:
        events = events.filter(action__startswith=filters["action"])
    if filters["object_type"]:
        events = events.filter(object_type=filters["object_type"])
    if filters["object_id"]:
        events = events.filter(object_id=filters["object_id"])
    if filters["since"] and (since := _day(filters["since"], end=False)):
        events = events.filter(at__gte=since)
    if filters["until"] and (until := _day(filters["until"], end=True)):
        events = events.filter(at__lte=until)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    display.annotate(page.object_list, can_admin=request.user.has_role("admin"))
    query = urlencode({k: v for k, v in filters.items() if v})
    return render(
        request,
        "audit/audit_list.html",
        {
            "page": page,
            "filters": filters,
            "query": query,
            "actors": mine.values_list("actor_name", flat=True).distinct().order_by("actor_name"),
            "object_types": [
                (t, display.type_label(t))
                for t in mine.exclude(object_type="")
                .values_list("object_type", flat=True)
                .distinct()
                .order_by("object_type")
            ],
        },
    )

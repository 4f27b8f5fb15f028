from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from opsconsole.accounts.access import viewer_required
from opsconsole.aws.clients import aws_account
from tenants.health.metrics import DEFAULT_RANGE, RANGES
from tenants.health.report import tenant_health_report
from tenants.views import get_tenant_for_user


@viewer_required
def tenant_health(request: HttpRequest, slug: str) -> HttpResponse:
    """The health page; htmx asks for its panel alone (range switch, refresh)."""
    tenant = get_tenant_for_user(request, slug)
    range_key = request.GET.get("range", DEFAULT_RANGE)
    if range_key not in RANGES:
        range_key = DEFAULT_RANGE
    # The tenant's metrics, alarms and logs are in its own AWS account.
    with aws_account(tenant.aws_account):
        report = tenant_health_report(tenant, range_key=range_key)
    template = "tenants/health.html"
    if getattr(request, "htmx", False):
        template += "#panel"
    return render(request, template, {"tenant": tenant, "report": report})

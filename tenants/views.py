from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from opsconsole.accounts.access import viewer_required
from tenants.models import Tenant


@viewer_required
def tenant_list(request: HttpRequest) -> HttpResponse:
    tenants = Tenant.objects.all()
    status = request.GET.get("status", "")
    if status:
        tenants = tenants.filter(status=status)
    return render(request, "tenants/tenant_list.html", {"tenants": tenants, "status": status})

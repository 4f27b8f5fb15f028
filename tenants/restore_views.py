"""Restore data (issue 15): a form on the tenant's page for admins, the job's page after.

A restore writes into the customer's database, so it is an admin's action, confirmed by
typing the tenant's slug; the form keeps what was entered when it is refused.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.html import format_html

from opsconsole.accounts.access import role_required
from opsconsole.accounts.models import Role
from opsconsole.audit.services import audit_record
from tenants import restore
from tenants.provisioning import database_restore as dr
from tenants.scope import tenant_slug_visible
from tenants.views import get_tenant_for_user


class RestoreForm(forms.Form):
    dump = forms.FileField(
        required=False,
        label="pg_dump file",
        help_text="Custom format (pg_dump -Fc) or plain SQL, gzipped or not. Stored in the "
        "artifacts bucket, never in the console's database.",
    )
    s3_uri = forms.CharField(
        required=False,
        label="…or its S3 URI",
        help_text="s3://bucket/key, readable in the tenant's account.",
    )
    mode = forms.ChoiceField(
        choices=list(dr.MODES.items()), initial=dr.REPLACE, widget=forms.RadioSelect
    )
    confirm = forms.CharField(label="Type the tenant's slug to confirm")


@role_required(Role.ADMIN, visible=tenant_slug_visible)
def tenant_restore(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = get_tenant_for_user(request, slug)
    form = RestoreForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            if data["confirm"].strip() != tenant.slug:
                form.add_error("confirm", f"Type {tenant.slug} to confirm.")
            else:
                try:
                    job = restore.restore_start(
                        tenant,
                        mode=data["mode"],
                        upload=data["dump"],
                        s3_uri=data["s3_uri"],
                        created_by=request.user,
                    )
                except restore.RestoreRefused as exc:
                    form.add_error(None, str(exc))
                else:
                    audit_record(
                        request=request,
                        action="tenant.restore",
                        obj=tenant,
                        job=job.pk,
                        source=job.params["source"],
                        mode=job.params["mode"],
                    )
                    messages.success(
                        request,
                        format_html(
                            "Restoring into {}'s database: job #{} shows its progress.",
                            tenant.slug,
                            job.pk,
                        ),
                    )
                    return redirect("jobs:detail", job_id=job.pk)
    return render(
        request,
        "tenants/tenant_restore.html",
        {"tenant": tenant, "form": form, "formats": dr.FORMATS.values()},
        status=status,
    )

"""Attachments in the console: the fleet's on their own page, a tenant's on its page.

Everyone with a role sees them; admins add and remove them. Each change is audited and
applied by a reconcile of every tenant it touches (tenants.attachment_services).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from opsconsole.accounts.access import POST, role_required, viewer_required
from opsconsole.accounts.models import Role
from tenants import attachment_services
from tenants.models import Attachment, Tenant
from tenants.scope import refuse_scoped, scope_filter, tenant_slug_visible, user_is_scoped
from tenants.views import get_tenant_for_user


class AttachmentForm(forms.Form):
    name = forms.CharField(max_length=40, help_text="redis, search…: lower-case, dashes")
    host = forms.CharField(max_length=253, help_text="the service's host name in the VPC")
    port = forms.IntegerField(min_value=1, max_value=65535)
    security_group_id = forms.CharField(
        max_length=32, label="Service's security group", help_text="sg-…, in the tenants' VPC"
    )
    variables_text = forms.CharField(
        required=False,
        label="Variables",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="NAME=template a line; {host}, {port} and {tenant} are filled in, "
        "e.g. REDIS_HOST={host}",
    )

    def clean_variables_text(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["variables_text"].splitlines(), 1):
            if not line.strip():
                continue
            name, sep, template = line.partition("=")
            if not sep or not name.strip():
                raise forms.ValidationError(f"line {number}: NAME=template")
            out[name.strip()] = template.strip()
        return out


def _add(request: HttpRequest, form: AttachmentForm, tenant: Tenant | None) -> bool:
    """Store the form's attachment; False with the problems on the form."""
    if not form.is_valid():
        return False
    data = form.cleaned_data
    try:
        attachment_services.attachment_add(
            tenant=tenant,
            name=data["name"],
            host=data["host"],
            port=data["port"],
            security_group_id=data["security_group_id"].strip(),
            variables=data["variables_text"],
            request=request,
        )
    except attachment_services.AttachmentError as exc:
        for problem in exc.problems:
            form.add_error(None, problem)
        return False
    messages.success(
        request, f"Attachment {data['name']} added: a reconcile applies its rules to AWS."
    )
    return True


@viewer_required
def fleet_attachments(request: HttpRequest) -> HttpResponse:
    """Every attachment: the fleet's (all tenants) and each tenant's own."""
    form = AttachmentForm(request.POST or None)
    if request.method == "POST":
        if not request.user.has_role("admin"):
            raise PermissionDenied("This needs the admin role.")
        refuse_scoped(request.user, "A fleet attachment")
        if _add(request, form, None):
            return redirect("tenants:attachments")
    # A scoped user sees the fleet's attachments (they reach their tenants too) and the
    # own attachments of their tenants only.
    attachments = (
        Attachment.objects.select_related("tenant")
        .filter(Q(tenant__isnull=True) | scope_filter(request.user, "tenant__"))
        .order_by("tenant__slug", "name")
    )
    return render(
        request,
        "tenants/attachments.html",
        {
            "fleet": [a for a in attachments if a.tenant_id is None],
            "per_tenant": [a for a in attachments if a.tenant_id is not None],
            "form": form,
        },
        status=400 if form.errors else 200,
    )


@role_required(Role.ADMIN, visible=tenant_slug_visible, methods=POST)
def tenant_attachment_add(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = get_tenant_for_user(request, slug)
    form = AttachmentForm(request.POST)
    if not _add(request, form, tenant):
        problems = [str(e) for errors in form.errors.values() for e in errors]
        messages.error(request, "Attachment not added: " + "; ".join(problems))
    return redirect("tenants:detail", slug=tenant.slug)


def _attachment_visible(request: HttpRequest, *, pk: int, **_) -> None:
    if user_is_scoped(request.user):
        seen = Q(tenant__isnull=True) | scope_filter(request.user, "tenant__")
        if not Attachment.objects.filter(seen, pk=pk).exists():
            raise Http404("No such attachment.")


@role_required(Role.ADMIN, visible=_attachment_visible, methods=POST)
def attachment_remove(request: HttpRequest, pk: int) -> HttpResponse:
    attachment = get_object_or_404(Attachment.objects.select_related("tenant"), pk=pk)
    tenant = attachment.tenant
    if tenant is None:
        refuse_scoped(request.user, "A fleet attachment")
    name = attachment.name
    slugs = attachment_services.attachment_remove(attachment=attachment, request=request)
    messages.success(
        request,
        f"Attachment {name} removed"
        + (f": reconciling {', '.join(slugs)} revokes its rules." if slugs else "."),
    )
    if tenant is not None:
        return redirect("tenants:detail", slug=tenant.slug)
    return redirect("tenants:attachments")

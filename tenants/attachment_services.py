"""Attachment changes from the console: store a checked attachment or delete one, audit
it and reconcile every tenant it applies to (the reconcile's attachments step adds or
revokes the rules)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F

from opsconsole.audit.services import audit_record
from opsconsole.jobs.services import job_create
from tenants.attachments import attachment_problems
from tenants.models import Attachment, Tenant, TenantStatus

# A reconcile applies an attachment change to these.
RECONCILED = (TenantStatus.ACTIVE, TenantStatus.SUSPENDED, TenantStatus.FAILED)


class AttachmentError(Exception):
    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def _reconcile(tenants: list[Tenant], request) -> list[str]:
    """Bump each tenant's configuration (the tenant page says "not yet applied") and queue
    a reconcile for those it can run on; a provisioning tenant's own job applies it, or
    shows it still to apply. Inside the caller's transaction: the jobs go out on commit."""
    slugs = []
    for tenant in tenants:
        Tenant.objects.filter(pk=tenant.pk).update(config_generation=F("config_generation") + 1)
        tenant.refresh_from_db(fields=["config_generation"])
        if tenant.status not in RECONCILED:
            continue
        job_create(
            kind="tenant_reconcile",
            subject_type="tenant",
            subject_id=tenant.slug,
            params={"generation": tenant.config_generation},
            created_by=request.user,
        )
        slugs.append(tenant.slug)
    return slugs


def _affected(tenant: Tenant | None) -> list[Tenant]:
    qs = Tenant.objects.exclude(status__in=(TenantStatus.OFFBOARDING, TenantStatus.OFFBOARDED))
    return list(qs.filter(pk=tenant.pk) if tenant is not None else qs)


def attachment_add(
    *,
    tenant: Tenant | None,
    name: str,
    host: str,
    port: int,
    security_group_id: str,
    variables: dict[str, str],
    request,
) -> Attachment:
    """Store a checked attachment (``tenant`` None: the fleet's) and reconcile the tenants
    it applies to. Raises AttachmentError with the problems; nothing is stored then."""
    problems = attachment_problems(name, host, port, security_group_id, variables, tenant=tenant)
    if problems:
        raise AttachmentError(problems)
    with transaction.atomic():
        attachment = Attachment.objects.create(
            tenant=tenant,
            name=name,
            host=host,
            port=port,
            security_group_id=security_group_id,
            variables=variables,
        )
        slugs = _reconcile(_affected(tenant), request)
        audit_record(
            request=request,
            action="attachment.add",
            obj=attachment,
            tenant=tenant.slug if tenant else "(fleet)",
            host=host,
            port=port,
            security_group_id=security_group_id,
            variables=variables,
            reconciling=slugs,
        )
    return attachment


def attachment_remove(*, attachment: Attachment, request) -> list[str]:
    """Delete the attachment; each affected tenant's reconcile revokes its rule."""
    tenant = attachment.tenant
    with transaction.atomic():
        details = {
            "tenant": tenant.slug if tenant else "(fleet)",
            "host": attachment.host,
            "port": attachment.port,
            "security_group_id": attachment.security_group_id,
        }
        audit_repr = str(attachment)
        pk = attachment.pk
        attachment.delete()
        slugs = _reconcile(_affected(tenant), request)
        audit_record(
            request=request,
            action="attachment.remove",
            object_type="tenants.attachment",
            object_id=str(pk),
            object_repr=audit_repr,
            reconciling=slugs,
            **details,
        )
    return slugs

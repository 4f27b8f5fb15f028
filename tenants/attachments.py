"""Existing services in the VPC that tenants' functions reach (a shared Redis, any host).

An attachment names a host, a port and the security group that guards it. A tenant with
attachments gets a security group of its own for its function: the service's group
admits that group on the port, so each tenant reaches exactly what it was given.
"""

from __future__ import annotations

from django.db.models import Q

from tenants import resources
from tenants.models import Attachment, Tenant


def attachments_for(tenant: Tenant) -> list[Attachment]:
    """The tenant's own attachments and the fleet's (tenant empty)."""
    if tenant.pk is None:
        return list(Attachment.objects.filter(tenant=None))
    return list(Attachment.objects.filter(Q(tenant=tenant) | Q(tenant=None)).order_by("name"))


def tenant_security_group(tenant: Tenant) -> str | None:
    """The tenant's own function security group, once its step recorded it."""
    record = resources.find(tenant, kind="function_sg")
    if record is None or record.status != "present" or not record.identifier:
        return None
    return record.identifier

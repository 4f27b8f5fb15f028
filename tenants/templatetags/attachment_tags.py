"""The tenant page's attachments section reads them here, so the tenant view (shared by
many features) needs no context of its own for them."""

from django import template

from tenants.attachments import attachments_for, group_name, tenant_security_group

register = template.Library()


@register.simple_tag
def tenant_attachments(tenant) -> dict:
    return {
        "attachments": attachments_for(tenant),
        "group_name": group_name(tenant.slug),
        "group_id": tenant_security_group(tenant),
    }

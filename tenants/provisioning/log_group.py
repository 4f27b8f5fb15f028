"""Step 5: the function's log group, with retention (Lambda would create one without)."""

from __future__ import annotations

from django.conf import settings

from opsconsole.aws import logs
from opsconsole.aws.errors import AwsError
from tenants import naming, resources
from tenants.provisioning.common import Drift, account_id, tags_for, tenant_of


def retention_days(tenant) -> int:
    """The tenant's retention, else the console's."""
    return tenant.log_retention_days or settings.TENANT_LOG_RETENTION_DAYS


def step_log_group(job, step) -> dict:
    tenant = tenant_of(job)
    name = naming.log_group_name(tenant.slug)
    days = retention_days(tenant)
    group = None
    if resources.find(tenant, kind="log_group") is not None:
        group = logs.describe_log_group(name=name, region=tenant.region)
    if group is None:
        # Create first; a group left by a crash (or by Lambda itself) is adopted.
        try:
            logs.create_log_group(name=name, tags=tags_for(tenant), region=tenant.region)
        except AwsError as exc:
            if exc.code != "ResourceAlreadyExistsException":
                raise
        group = {}  # a new group has no retention: set it below
    if group.get("retentionInDays") != days:
        logs.put_retention(name=name, days=days, region=tenant.region)
    account = account_id(tenant.region)
    resources.record(
        tenant,
        kind="log_group",
        name=name,
        arn=f"arn:aws:logs:{tenant.region}:{account}:log-group:{name}:*",
        details={"retention_days": days},
    )
    return {"log_group": name, "retention_days": days}


def log_group_drift(tenant) -> list[Drift]:
    name = naming.log_group_name(tenant.slug)
    group = logs.describe_log_group(name=name, region=tenant.region)
    if group is None:
        return [Drift("log_group", name, "exists", "present", "missing")]
    days = retention_days(tenant)
    if group.get("retentionInDays") != days:
        return [Drift("log_group", name, "retention_days", days, group.get("retentionInDays"))]
    return []

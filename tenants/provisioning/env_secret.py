"""The tenant's secret environment variables: one Secrets Manager secret of NAME -> value.

Values are written by the web request that receives them (tenants.services), straight to
Secrets Manager, so they never reach the console's database or the broker. This step only
makes sure the secret exists and is recorded.
"""

from __future__ import annotations

from opsconsole.aws import secrets
from tenants import naming, resources
from tenants.models import Tenant
from tenants.provisioning.common import tags_for, tenant_of


def write_env_secret(tenant: Tenant, *, set_values: dict[str, str], remove: list[str]) -> str:
    """Merge ``set_values`` into the tenant's env secret and drop ``remove``. Returns ARN."""
    name = naming.env_secret_name(tenant.slug)
    existing = secrets.describe_secret(secret_id=name, region=tenant.region)
    if existing is None:
        created = secrets.create_secret_json(
            name=name,
            value=set_values,
            description=f"opsconsole tenant {tenant.slug} env",
            tags=tags_for(tenant),
            region=tenant.region,
        )
        arn, version_id = created["ARN"], created["VersionId"]
    else:
        if existing.get("DeletedDate"):
            secrets.restore_secret(secret_id=name, region=tenant.region)
        current = secrets.get_secret_json(secret_id=name, region=tenant.region)
        merged = {k: v for k, v in {**current, **set_values}.items() if k not in remove}
        version_id = secrets.current_version(existing)
        if merged != current:
            version_id = secrets.put_secret_json(secret_id=name, value=merged, region=tenant.region)
        arn = existing["ARN"]
    _record(tenant, arn=arn, version_id=version_id)
    return arn


def _record(tenant: Tenant, *, arn: str, version_id: str) -> None:
    """``version_id``: the version the function's variables were built from (a new one
    made outside the console is noticed and applied by tenants.credentials)."""
    resources.record(
        tenant,
        kind="env_secret",
        name=naming.env_secret_name(tenant.slug),
        arn=arn,
        details={"names": sorted(set(tenant.secret_env_names)), "version_id": version_id},
    )


def step_env_secret(job, step) -> dict:
    tenant = tenant_of(job)
    name = naming.env_secret_name(tenant.slug)
    if not tenant.secret_env_names:
        return {"secret": "none (no secret variables)"}
    existing = secrets.describe_secret(secret_id=name, region=tenant.region)
    if existing is not None and not existing.get("DeletedDate"):
        _record(tenant, arn=existing["ARN"], version_id=secrets.current_version(existing))
        return {"secret_arn": existing["ARN"]}
    # The secret is gone (a sandbox restart, or deleted by hand). Its values were never
    # stored anywhere else, so re-create it with the names and empty values and say so.
    arn = write_env_secret(tenant, set_values=dict.fromkeys(tenant.secret_env_names, ""), remove=[])
    step.detail = "secret values were lost: re-enter them under Edit configuration"
    step.save(update_fields=["detail"])
    return {"secret_arn": arn, "values_lost": True}

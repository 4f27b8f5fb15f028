"""A tenant's RDS Proxy in front of its dedicated instance or Aurora cluster, and the IAM
role the proxy assumes to read the tenant's DB secret (and nothing else)."""

from __future__ import annotations

import logging
from typing import Any

from opsconsole.aws import iam, iam_proxy, rds
from opsconsole.aws.errors import AwsError
from opsconsole.jobs.registry import StepWait
from tenants import naming, resources
from tenants.models import Isolation, Tenant
from tenants.provisioning.common import Drift, tags_for, tenant_network
from tenants.provisioning.database_common import POSTGRES_PORT, mark_deleted
from tenants.provisioning.database_rds import wait_unless_available

logger = logging.getLogger(__name__)

PROXY_POLICY_NAME = "read-db-secret"


def proxy_role_name(slug: str) -> str:
    """The IAM role the tenant's RDS Proxy assumes to read its DB secret (at most 61)."""
    return f"{naming.role_name(slug)}-rds-proxy"


def _ensure_proxy_role(tenant: Tenant, *, secret_arn: str) -> tuple[str, bool]:
    """The role the proxy assumes: it may read this tenant's DB secret and nothing else."""
    name = proxy_role_name(tenant.slug)
    role = iam_proxy.get_role(name=name)
    created = False
    if role is None:
        try:
            role = iam_proxy.create_proxy_role(
                name=name,
                tags=tags_for(tenant),
                description=f"RDS Proxy of tenant {tenant.slug}: reads its DB secret",
            )
            created = True
        except AwsError as exc:
            if exc.code != "EntityAlreadyExists":
                raise
            role = iam_proxy.get_role(name=name)
            if role is None:
                raise
    policy = iam_proxy.proxy_secret_policy(secret_arn=secret_arn, region=tenant.region)
    if iam_proxy.get_role_policy(role=name, policy_name=PROXY_POLICY_NAME) != policy:
        iam_proxy.put_role_policy(role=name, policy_name=PROXY_POLICY_NAME, document=policy)
    resources.record(
        tenant,
        kind="db_proxy_role",
        name=name,
        identifier=name,
        arn=role["Arn"],
        details={"policy": PROXY_POLICY_NAME, "secret_arn": secret_arn},
    )
    return role["Arn"], created


def ensure_proxy(
    tenant: Tenant,
    *,
    secret_arn: str,
    instance_id: str | None = None,
    cluster_id: str | None = None,
) -> dict[str, Any]:
    """The proxy exists, is available and has the instance or cluster as its target."""
    region = tenant.region
    name = naming.db_proxy_name(tenant.slug)
    role_arn, role_created = _ensure_proxy_role(tenant, secret_arn=secret_arn)
    proxy = rds.describe_db_proxy(name=name, region=region)
    if proxy is None:
        network = tenant_network(tenant)
        try:
            proxy = rds.create_db_proxy(
                name=name,
                secret_arn=secret_arn,
                role_arn=role_arn,
                subnet_ids=network.subnet_ids,
                security_group_ids=[network.database_sg_id],
                tags=tags_for(tenant),
                region=region,
            )
        except AwsError as exc:
            # A new IAM role takes seconds to be assumable everywhere.
            if role_created and "role" in exc.message.lower():
                raise StepWait("waiting for the proxy's IAM role", retry_in=15) from exc
            raise
        logger.info("Creating RDS Proxy %s for tenant %s", name, tenant.slug)
    status = proxy.get("Status", "")
    target = cluster_id or instance_id or ""
    details = {
        "status": status,
        "endpoint": f"{proxy.get('Endpoint', '')}:{POSTGRES_PORT}",
        "host": proxy.get("Endpoint", ""),
        "port": POSTGRES_PORT,
        "target": target,
        "role_arn": role_arn,
    }
    resources.record(
        tenant,
        kind="db_proxy",
        name=name,
        identifier=name,
        arn=proxy.get("DBProxyArn", ""),
        details=details,
    )
    wait_unless_available(status, "RDS Proxy")
    registered = {
        t.get("RdsResourceId") for t in rds.list_db_proxy_targets(name=name, region=region)
    }
    if target not in registered:
        rds.register_db_proxy_targets(
            name=name,
            instance_identifiers=[instance_id] if instance_id else None,
            cluster_identifiers=[cluster_id] if cluster_id else None,
            region=region,
        )
        logger.info("Registered %s as the target of RDS Proxy %s", target, name)
    return {"db_proxy": name, "proxy_endpoint": details["endpoint"]}


def proxy_endpoint(tenant: Tenant) -> tuple[str, int] | None:
    """Where clients reach the tenant's proxy; None when it does not exist (yet)."""
    proxy = rds.describe_db_proxy(name=naming.db_proxy_name(tenant.slug), region=tenant.region)
    return (proxy["Endpoint"], POSTGRES_PORT) if proxy and proxy.get("Endpoint") else None


def delete_proxy(tenant: Tenant) -> list[str]:
    """Offboarding: the proxy, then its role. Waits while the proxy is being deleted."""
    name = naming.db_proxy_name(tenant.slug)
    proxy = rds.describe_db_proxy(name=name, region=tenant.region)
    deleted = []
    if proxy is not None:
        if proxy.get("Status") != "deleting":
            rds.delete_db_proxy(name=name, region=tenant.region)
            logger.info("Deleting RDS Proxy %s", name)
        if rds.describe_db_proxy(name=name, region=tenant.region) is not None:
            raise StepWait("waiting for RDS Proxy (deleting)", retry_in=15)
        deleted.append(f"db_proxy {name}")
    mark_deleted(tenant, kind="db_proxy", name=name)
    role = proxy_role_name(tenant.slug)
    if proxy is not None or resources.find(tenant, kind="db_proxy_role", name=role):
        if iam.delete_role(name=role):
            deleted.append(f"role {role}")
        mark_deleted(tenant, kind="db_proxy_role", name=role)
    return deleted


def proxy_drift(tenant: Tenant) -> tuple[list[Drift], tuple[str, int] | None]:
    """The proxy exists and targets the tenant's instance or cluster; with its endpoint."""
    name = naming.db_proxy_name(tenant.slug)
    proxy = rds.describe_db_proxy(name=name, region=tenant.region)
    if proxy is None:
        return [Drift("db_proxy", name, "exists", True, False)], None
    target = (
        naming.db_cluster_id(tenant.slug)
        if tenant.isolation == Isolation.SERVERLESS
        else naming.db_instance_id(tenant.slug)
    )
    registered = sorted(
        {
            t.get("RdsResourceId", "")
            for t in rds.list_db_proxy_targets(name=name, region=tenant.region)
        }
    )
    drifts = [] if target in registered else [Drift("db_proxy", name, "target", target, registered)]
    return drifts, (proxy["Endpoint"], POSTGRES_PORT)

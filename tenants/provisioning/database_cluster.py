"""An Aurora Serverless v2 cluster per tenant (``aurora-postgresql``) with its one
``db.serverless`` instance: created with the tenant's role as master user and its database
as the initial one, then kept to the spec (capacity range, backups, deletion protection).
"""

from __future__ import annotations

import logging
from typing import Any

from opsconsole.aws import rds
from opsconsole.aws.errors import AwsError, AwsNotFound
from opsconsole.jobs.registry import StepWait
from tenants import naming
from tenants.models import Isolation, Tenant
from tenants.provisioning.common import Drift, tags_for, tenant_network
from tenants.provisioning.database_choices import (
    apply_corrections,
    choice_pairs,
    wanted_auto_pause,
    wanted_version,
    window_changes,
)
from tenants.provisioning.database_common import compare, mark_deleted
from tenants.provisioning.database_instance import delete_instance
from tenants.provisioning.database_proxy import ensure_proxy
from tenants.provisioning.database_rds import (
    RDS_RETRY_S,
    apply_master_password,
    busy,
    effective,
    endpoint_of,
    fingerprint,
    record_rds,
    subnet_group_name,
    wait_unless_available,
)
from tenants.provisioning.database_secret import ensure_db_secret

logger = logging.getLogger(__name__)

AURORA_ENGINE = "aurora-postgresql"


def cluster_instance_id(slug: str) -> str:
    """The one ``db.serverless`` instance of a tenant's Aurora cluster (at most 62 chars)."""
    return f"{naming.db_cluster_id(slug)}-instance-1"


def _cluster_corrections(tenant: Tenant, cluster: dict) -> tuple[dict[str, Any], list[str]]:
    changes: dict[str, Any] = {}
    notes = []
    scaling = cluster.get("ServerlessV2ScalingConfiguration") or {}
    pending = (cluster.get("PendingModifiedValues") or {}).get("ServerlessV2ScalingConfiguration")
    scaling = pending or scaling
    want_min, want_max = float(tenant.serverless_min_acu), float(tenant.serverless_max_acu)
    pause = wanted_auto_pause(tenant)
    if (scaling.get("MinCapacity"), scaling.get("MaxCapacity")) != (want_min, want_max) or (
        pause is not None and scaling.get("SecondsUntilAutoPause") != pause
    ):
        changes.update(min_capacity=want_min, max_capacity=want_max)
        if pause is not None:
            changes["seconds_until_auto_pause"] = pause
    if int(effective(cluster, "BackupRetentionPeriod") or 0) != tenant.db_backup_retention_days:
        changes["backup_retention_days"] = tenant.db_backup_retention_days
    if bool(cluster.get("DeletionProtection")) != tenant.db_deletion_protection:
        changes["deletion_protection"] = tenant.db_deletion_protection
    if bool(cluster.get("StorageEncrypted")) != tenant.db_storage_encrypted:
        notes.append("storage encryption cannot change on an existing cluster")
    changes.update(window_changes(tenant, cluster))
    return changes, notes


def ensure_serverless_database(tenant: Tenant) -> dict[str, Any]:
    """Onboarding step 2 for a serverless tenant: its cluster, the cluster's instance (and
    a proxy, if asked for)."""
    slug, region = tenant.slug, tenant.region
    identifier = naming.db_cluster_id(slug)
    cluster = rds.describe_db_cluster(identifier=identifier, region=region)
    if cluster is None:
        arn, value, _ = ensure_db_secret(tenant)
        network = tenant_network(tenant)
        cluster = rds.create_db_cluster(
            identifier=identifier,
            engine=AURORA_ENGINE,
            engine_version=wanted_version(tenant),
            database_name=naming.db_name(slug),
            master_username=naming.db_user(slug),
            master_password=value["password"],
            subnet_group=subnet_group_name(),
            security_group_ids=[network.database_sg_id],
            min_capacity=float(tenant.serverless_min_acu),
            max_capacity=float(tenant.serverless_max_acu),
            backup_retention_days=tenant.db_backup_retention_days,
            storage_encrypted=tenant.db_storage_encrypted,
            deletion_protection=tenant.db_deletion_protection,
            tags=tags_for(tenant),
            seconds_until_auto_pause=wanted_auto_pause(tenant),
            backup_window=tenant.db_backup_window,
            maintenance_window=tenant.db_maintenance_window.lower(),
            region=region,
        )
        logger.info("Creating Aurora cluster %s for tenant %s", identifier, slug)
        record_rds(
            tenant, kind="db_cluster", resource=cluster, fingerprint=fingerprint(value["password"])
        )
    else:
        record_rds(tenant, kind="db_cluster", resource=cluster)
    wait_unless_available(cluster.get("Status", ""))

    arn, value, _ = ensure_db_secret(tenant)
    cluster, password_set = apply_master_password(
        tenant, kind="db_cluster", resource=cluster, arn=arn, password=value["password"]
    )
    changes, notes = _cluster_corrections(tenant, cluster)
    cluster, changes, upgrade_notes = apply_corrections(
        tenant,
        kind="db_cluster",
        what="Aurora cluster",
        resource=cluster,
        modify=rds.modify_db_cluster,
        identifier=identifier,
        region=region,
        changes=changes,
    )
    notes += upgrade_notes

    instance_id = cluster_instance_id(slug)
    instance = rds.describe_db_instance(identifier=instance_id, region=region)
    if instance is None:
        instance = rds.create_db_cluster_instance(
            identifier=instance_id,
            cluster_identifier=identifier,
            engine=AURORA_ENGINE,
            tags=tags_for(tenant),
            region=region,
        )
        logger.info("Creating instance %s in cluster %s", instance_id, identifier)
    record_rds(tenant, kind="db_instance", resource=instance)
    wait_unless_available(instance.get("DBInstanceStatus", ""))

    host, port = endpoint_of(cluster)
    output: dict[str, Any] = {
        "isolation": Isolation.SERVERLESS,
        "db_cluster": identifier,
        "db_instance": instance_id,
        "arn": cluster.get("DBClusterArn", ""),
        "status": cluster.get("Status", ""),
        "endpoint": f"{host}:{port}",
        "database": naming.db_name(slug),
        "scaling": cluster.get("ServerlessV2ScalingConfiguration") or {},
        "modified": sorted(changes) + (["master_password"] if password_set else []),
        "notes": notes,
        "secret_arn": arn,
    }
    if tenant.use_rds_proxy:
        output.update(ensure_proxy(tenant, secret_arn=arn, cluster_id=identifier))
    return output


def cluster_endpoint(tenant: Tenant) -> tuple[str, int] | None:
    """The cluster's (writer) endpoint; None when it does not exist or has none yet."""
    found = rds.describe_db_cluster(
        identifier=naming.db_cluster_id(tenant.slug), region=tenant.region
    )
    if not found:
        return None
    host, port = endpoint_of(found)
    return (host, port) if host else None


def delete_serverless_database(tenant: Tenant) -> list[str]:
    """Offboarding: the cluster's instances, then the cluster (and with it its database)."""
    region = tenant.region
    identifier = naming.db_cluster_id(tenant.slug)
    cluster = rds.describe_db_cluster(identifier=identifier, region=region)
    deleted = []
    if cluster is not None:
        status = cluster.get("Status", "")
        if status != "deleting":
            members = [m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers", [])]
            remaining = [m for m in members if not delete_instance(tenant, m, in_cluster=True)]
            for member in members:
                if member not in remaining:
                    mark_deleted(tenant, kind="db_instance", name=member)
                    deleted.append(f"db_instance {member}")
            if remaining:
                raise StepWait(
                    f"waiting for RDS (deleting {', '.join(remaining)})", retry_in=RDS_RETRY_S
                )
            try:
                if cluster.get("DeletionProtection"):
                    rds.modify_db_cluster(
                        identifier=identifier, deletion_protection=False, region=region
                    )
                rds.delete_db_cluster(
                    identifier=identifier, skip_final_snapshot=True, region=region
                )
            except AwsNotFound:
                pass
            except AwsError as exc:
                if exc.permanent and "protect" not in exc.message.lower():
                    raise
                raise busy(exc, status) from exc
            logger.info("Deleting Aurora cluster %s", identifier)
        if rds.describe_db_cluster(identifier=identifier, region=region) is not None:
            raise StepWait("waiting for RDS (deleting)", retry_in=RDS_RETRY_S)
        deleted.append(f"db_cluster {identifier}")
    mark_deleted(tenant, kind="db_instance", name=cluster_instance_id(tenant.slug))
    mark_deleted(tenant, kind="db_cluster", name=identifier)
    return deleted


def serverless_drift(tenant: Tenant) -> tuple[list[Drift], tuple[str, int] | None]:
    """The cluster and its instance against the spec; with its endpoint (None: unknown)."""
    identifier = naming.db_cluster_id(tenant.slug)
    cluster = rds.describe_db_cluster(identifier=identifier, region=tenant.region)
    if cluster is None:
        return [Drift("db_cluster", identifier, "exists", True, False)], None
    scaling = cluster.get("ServerlessV2ScalingConfiguration") or {}
    pairs = [
        ("min_capacity", float(tenant.serverless_min_acu), scaling.get("MinCapacity")),
        ("max_capacity", float(tenant.serverless_max_acu), scaling.get("MaxCapacity")),
        (
            "backup_retention_days",
            tenant.db_backup_retention_days,
            effective(cluster, "BackupRetentionPeriod"),
        ),
        ("storage_encrypted", tenant.db_storage_encrypted, bool(cluster.get("StorageEncrypted"))),
        (
            "deletion_protection",
            tenant.db_deletion_protection,
            bool(cluster.get("DeletionProtection")),
        ),
        *choice_pairs(tenant, cluster, effective(cluster, "EngineVersion")),
    ]
    pause = wanted_auto_pause(tenant)
    if pause is not None:
        pairs.append(("seconds_until_auto_pause", pause, scaling.get("SecondsUntilAutoPause")))
    drifts = compare("db_cluster", identifier, pairs)
    instance_id = cluster_instance_id(tenant.slug)
    if rds.describe_db_instance(identifier=instance_id, region=tenant.region) is None:
        drifts.append(Drift("db_instance", instance_id, "exists", True, False))
    host, port = endpoint_of(cluster)
    return drifts, ((host, port) if host else None)

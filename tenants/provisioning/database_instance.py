"""A dedicated RDS PostgreSQL instance per tenant: created with the tenant's role as master
user and its database as the initial one, then kept to the spec (class, storage, backups,
deletion protection). RDS makes the role and the database inside the instance; the console
only talks to RDS. An instance still being created or modified re-queues the step.
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
    wanted_version,
    window_changes,
)
from tenants.provisioning.database_common import POSTGRES_ENGINE, compare, mark_deleted
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


def _instance_corrections(tenant: Tenant, instance: dict) -> tuple[dict[str, Any], list[str]]:
    """What ``modify_db_instance`` should change, and what it cannot change."""
    changes: dict[str, Any] = {}
    notes = []
    if effective(instance, "DBInstanceClass") != tenant.db_instance_class:
        changes["instance_class"] = tenant.db_instance_class
    storage = int(effective(instance, "AllocatedStorage") or 0)
    if storage < tenant.db_allocated_storage_gb:
        changes["allocated_storage_gb"] = tenant.db_allocated_storage_gb
    elif storage > tenant.db_allocated_storage_gb:
        notes.append(
            f"storage is {storage} GB, spec {tenant.db_allocated_storage_gb} GB: "
            "RDS storage cannot shrink"
        )
    if int(effective(instance, "BackupRetentionPeriod") or 0) != tenant.db_backup_retention_days:
        changes["backup_retention_days"] = tenant.db_backup_retention_days
    if bool(instance.get("DeletionProtection")) != tenant.db_deletion_protection:
        changes["deletion_protection"] = tenant.db_deletion_protection
    if bool(instance.get("StorageEncrypted")) != tenant.db_storage_encrypted:
        notes.append("storage encryption cannot change on an existing instance")
    # Both conversions keep the instance up (the standby is built from a snapshot).
    if bool(effective(instance, "MultiAZ")) != tenant.db_multi_az:
        changes["multi_az"] = tenant.db_multi_az
    changes.update(window_changes(tenant, instance))
    return changes, notes


def ensure_dedicated_database(tenant: Tenant) -> dict[str, Any]:
    """Onboarding step 2 for a dedicated tenant: its instance (and proxy, if asked for)."""
    slug, region = tenant.slug, tenant.region
    identifier = naming.db_instance_id(slug)
    instance = rds.describe_db_instance(identifier=identifier, region=region)
    if instance is None:
        arn, value, _ = ensure_db_secret(tenant)
        network = tenant_network(tenant)
        instance = rds.create_db_instance(
            identifier=identifier,
            instance_class=tenant.db_instance_class,
            engine=POSTGRES_ENGINE,
            engine_version=wanted_version(tenant),
            allocated_storage_gb=tenant.db_allocated_storage_gb,
            master_username=naming.db_user(slug),
            master_password=value["password"],
            subnet_group=subnet_group_name(),
            security_group_ids=[network.database_sg_id],
            tags=tags_for(tenant),
            db_name=naming.db_name(slug),
            backup_retention_days=tenant.db_backup_retention_days,
            storage_encrypted=tenant.db_storage_encrypted,
            deletion_protection=tenant.db_deletion_protection,
            multi_az=tenant.db_multi_az,
            backup_window=tenant.db_backup_window,
            maintenance_window=tenant.db_maintenance_window.lower(),
            region=region,
        )
        logger.info("Creating RDS instance %s for tenant %s", identifier, slug)
        record_rds(
            tenant,
            kind="db_instance",
            resource=instance,
            fingerprint=fingerprint(value["password"]),
        )
    else:
        record_rds(tenant, kind="db_instance", resource=instance)
    wait_unless_available(instance.get("DBInstanceStatus", ""))

    arn, value, _ = ensure_db_secret(tenant)
    instance, password_set = apply_master_password(
        tenant, kind="db_instance", resource=instance, arn=arn, password=value["password"]
    )
    changes, notes = _instance_corrections(tenant, instance)
    instance, changes, upgrade_notes = apply_corrections(
        tenant,
        kind="db_instance",
        what="RDS instance",
        resource=instance,
        modify=rds.modify_db_instance,
        identifier=identifier,
        region=region,
        changes=changes,
    )
    notes += upgrade_notes
    host, port = endpoint_of(instance)
    output: dict[str, Any] = {
        "isolation": Isolation.DEDICATED,
        "db_instance": identifier,
        "arn": instance.get("DBInstanceArn", ""),
        "status": instance.get("DBInstanceStatus", ""),
        "endpoint": f"{host}:{port}",
        "database": naming.db_name(slug),
        "modified": sorted(changes) + (["master_password"] if password_set else []),
        "notes": notes,
        "secret_arn": arn,
    }
    if tenant.use_rds_proxy:
        output.update(ensure_proxy(tenant, secret_arn=arn, instance_id=identifier))
    return output


def instance_endpoint(tenant: Tenant) -> tuple[str, int] | None:
    """The dedicated instance's endpoint; None when it does not exist or has none yet."""
    found = rds.describe_db_instance(
        identifier=naming.db_instance_id(tenant.slug), region=tenant.region
    )
    if not found:
        return None
    host, port = endpoint_of(found)
    return (host, port) if host else None


def delete_instance(tenant: Tenant, identifier: str, *, in_cluster: bool = False) -> bool:
    """Start deleting an instance; True once it is gone (False: still deleting)."""
    region = tenant.region
    instance = rds.describe_db_instance(identifier=identifier, region=region)
    if instance is None:
        return True
    status = instance.get("DBInstanceStatus", "")
    if status != "deleting":
        try:
            if instance.get("DeletionProtection"):
                rds.modify_db_instance(
                    identifier=identifier, deletion_protection=False, region=region
                )
            if in_cluster:
                rds.delete_db_cluster_instance(identifier=identifier, region=region)
            else:
                rds.delete_db_instance(
                    identifier=identifier,
                    skip_final_snapshot=True,  # the final snapshot is already taken
                    delete_automated_backups=False,
                    region=region,
                )
        except AwsNotFound:
            return True
        except AwsError as exc:
            if exc.permanent and "protect" not in exc.message.lower():
                raise
            raise busy(exc, status) from exc
        logger.info("Deleting RDS instance %s", identifier)
    return rds.describe_db_instance(identifier=identifier, region=region) is None


def delete_dedicated_database(tenant: Tenant) -> list[str]:
    """Offboarding: the tenant's instance goes (and with it, in RDS, its database)."""
    identifier = naming.db_instance_id(tenant.slug)
    if not delete_instance(tenant, identifier):
        raise StepWait("waiting for RDS (deleting)", retry_in=RDS_RETRY_S)
    mark_deleted(tenant, kind="db_instance", name=identifier)
    return [f"db_instance {identifier}"]


def dedicated_drift(tenant: Tenant) -> tuple[list[Drift], tuple[str, int] | None]:
    """The instance against the spec; with its endpoint (None when unknown)."""
    identifier = naming.db_instance_id(tenant.slug)
    instance = rds.describe_db_instance(identifier=identifier, region=tenant.region)
    if instance is None:
        return [Drift("db_instance", identifier, "exists", True, False)], None
    pairs = [
        ("instance_class", tenant.db_instance_class, effective(instance, "DBInstanceClass")),
        (
            "allocated_storage_gb",
            tenant.db_allocated_storage_gb,
            effective(instance, "AllocatedStorage"),
        ),
        (
            "backup_retention_days",
            tenant.db_backup_retention_days,
            effective(instance, "BackupRetentionPeriod"),
        ),
        ("storage_encrypted", tenant.db_storage_encrypted, bool(instance.get("StorageEncrypted"))),
        (
            "deletion_protection",
            tenant.db_deletion_protection,
            bool(instance.get("DeletionProtection")),
        ),
        ("multi_az", tenant.db_multi_az, bool(effective(instance, "MultiAZ"))),
        *choice_pairs(tenant, instance, effective(instance, "EngineVersion")),
    ]
    host, port = endpoint_of(instance)
    return compare("db_instance", identifier, pairs), ((host, port) if host else None)

"""RDS: database instances and clusters."""

from __future__ import annotations

from typing import Any

from opsconsole.aws.clients import call, client, tag_list
from opsconsole.aws.errors import AwsNotFound


def describe_db_instance(*, identifier: str, region: str | None = None) -> dict | None:
    try:
        resp = call(client("rds", region).describe_db_instances, DBInstanceIdentifier=identifier)
    except AwsNotFound:
        return None
    instances = resp.get("DBInstances", [])
    return instances[0] if instances else None


def describe_db_subnet_group(*, name: str, region: str | None = None) -> dict | None:
    try:
        resp = call(client("rds", region).describe_db_subnet_groups, DBSubnetGroupName=name)
    except AwsNotFound:
        return None
    groups = resp.get("DBSubnetGroups", [])
    return groups[0] if groups else None


def create_db_subnet_group(
    *,
    name: str,
    description: str,
    subnet_ids: list[str],
    tags: dict[str, str],
    region: str | None = None,
) -> dict:
    return call(
        client("rds", region).create_db_subnet_group,
        DBSubnetGroupName=name,
        DBSubnetGroupDescription=description,
        SubnetIds=subnet_ids,
        Tags=tag_list(tags),
    )["DBSubnetGroup"]


def create_db_instance(
    *,
    identifier: str,
    instance_class: str,
    engine: str,
    engine_version: str,
    allocated_storage_gb: int,
    master_username: str,
    master_password: str,
    subnet_group: str,
    security_group_ids: list[str],
    tags: dict[str, str],
    db_name: str | None = None,
    backup_retention_days: int = 7,
    storage_encrypted: bool = True,
    deletion_protection: bool = False,
    multi_az: bool = False,
    backup_window: str | None = None,
    maintenance_window: str | None = None,
    region: str | None = None,
) -> dict:
    """Start creating a private instance; it is ``creating`` for minutes in AWS.

    The master password goes to RDS and nowhere else; callers keep it in Secrets Manager.
    ``db_name`` is the database RDS creates in it, owned by the master user. Windows left
    out: RDS picks them.
    """
    kwargs: dict[str, Any] = _none_dropped(
        DBName=db_name or None,
        PreferredBackupWindow=backup_window or None,
        PreferredMaintenanceWindow=maintenance_window or None,
    )
    return call(
        client("rds", region).create_db_instance,
        DBInstanceIdentifier=identifier,
        DBInstanceClass=instance_class,
        Engine=engine,
        EngineVersion=engine_version,
        AllocatedStorage=allocated_storage_gb,
        StorageType="gp3",
        StorageEncrypted=storage_encrypted,
        MasterUsername=master_username,
        MasterUserPassword=master_password,
        DBSubnetGroupName=subnet_group,
        VpcSecurityGroupIds=security_group_ids,
        PubliclyAccessible=False,
        MultiAZ=multi_az,
        BackupRetentionPeriod=backup_retention_days,
        CopyTagsToSnapshot=True,
        DeletionProtection=deletion_protection,
        Tags=tag_list(tags),
        **kwargs,
    )["DBInstance"]


def _all_pages(fn: Any, key: str, **kwargs: Any) -> list[dict]:
    """Every item of a Marker-paged RDS describe call."""
    items: list[dict] = []
    while True:
        resp = call(fn, **kwargs)
        items.extend(resp.get(key, []))
        if not resp.get("Marker"):
            return items
        kwargs["Marker"] = resp["Marker"]


def _none_dropped(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def modify_db_instance(
    *,
    identifier: str,
    instance_class: str | None = None,
    allocated_storage_gb: int | None = None,
    backup_retention_days: int | None = None,
    deletion_protection: bool | None = None,
    master_password: str | None = None,
    multi_az: bool | None = None,
    backup_window: str | None = None,
    maintenance_window: str | None = None,
    engine_version: str | None = None,
    allow_major_version_upgrade: bool | None = None,
    apply_immediately: bool = True,
    region: str | None = None,
) -> dict:
    """Change only what is given; with ``apply_immediately`` AWS does not wait for the
    maintenance window (the instance is ``modifying`` for a while)."""
    return call(
        client("rds", region).modify_db_instance,
        DBInstanceIdentifier=identifier,
        ApplyImmediately=apply_immediately,
        **_none_dropped(
            DBInstanceClass=instance_class,
            AllocatedStorage=allocated_storage_gb,
            BackupRetentionPeriod=backup_retention_days,
            DeletionProtection=deletion_protection,
            MasterUserPassword=master_password,
            MultiAZ=multi_az,
            PreferredBackupWindow=backup_window,
            PreferredMaintenanceWindow=maintenance_window,
            EngineVersion=engine_version,
            AllowMajorVersionUpgrade=allow_major_version_upgrade,
        ),
    )["DBInstance"]


def delete_db_instance(
    *,
    identifier: str,
    skip_final_snapshot: bool = True,
    delete_automated_backups: bool = False,
    region: str | None = None,
) -> dict:
    """Start deleting an instance (``deleting`` for minutes in AWS).

    Callers take their own manual snapshot first; automated backups are kept by default so
    point-in-time restore stays possible for their retention period.
    """
    return call(
        client("rds", region).delete_db_instance,
        DBInstanceIdentifier=identifier,
        SkipFinalSnapshot=skip_final_snapshot,
        DeleteAutomatedBackups=delete_automated_backups,
    )["DBInstance"]


def delete_db_cluster_instance(*, identifier: str, region: str | None = None) -> dict:
    """Delete an instance of an Aurora cluster (its data lives in the cluster volume)."""
    return call(client("rds", region).delete_db_instance, DBInstanceIdentifier=identifier)[
        "DBInstance"
    ]


# --- Aurora clusters --------------------------------------------------------------------


def describe_db_cluster(*, identifier: str, region: str | None = None) -> dict | None:
    try:
        resp = call(client("rds", region).describe_db_clusters, DBClusterIdentifier=identifier)
    except AwsNotFound:
        return None
    clusters = resp.get("DBClusters", [])
    return clusters[0] if clusters else None


def create_db_cluster(
    *,
    identifier: str,
    engine: str,
    engine_version: str,
    database_name: str,
    master_username: str,
    master_password: str,
    subnet_group: str,
    security_group_ids: list[str],
    min_capacity: float,
    max_capacity: float,
    backup_retention_days: int,
    storage_encrypted: bool,
    deletion_protection: bool,
    tags: dict[str, str],
    seconds_until_auto_pause: int | None = None,
    backup_window: str | None = None,
    maintenance_window: str | None = None,
    region: str | None = None,
) -> dict:
    """Start creating an Aurora Serverless v2 cluster (it has no instance yet: see
    ``create_db_cluster_instance``). MinCapacity 0 lets it pause when idle, after
    ``seconds_until_auto_pause`` (AWS's default when None)."""
    return call(
        client("rds", region).create_db_cluster,
        DBClusterIdentifier=identifier,
        Engine=engine,
        EngineVersion=engine_version,
        DatabaseName=database_name,
        MasterUsername=master_username,
        MasterUserPassword=master_password,
        DBSubnetGroupName=subnet_group,
        VpcSecurityGroupIds=security_group_ids,
        ServerlessV2ScalingConfiguration=_scaling(
            min_capacity, max_capacity, seconds_until_auto_pause
        ),
        BackupRetentionPeriod=backup_retention_days,
        StorageEncrypted=storage_encrypted,
        DeletionProtection=deletion_protection,
        CopyTagsToSnapshot=True,
        Tags=tag_list(tags),
        **_none_dropped(
            PreferredBackupWindow=backup_window or None,
            PreferredMaintenanceWindow=maintenance_window or None,
        ),
    )["DBCluster"]


def _scaling(minimum: float, maximum: float, seconds_until_auto_pause: int | None) -> dict:
    return _none_dropped(
        MinCapacity=minimum, MaxCapacity=maximum, SecondsUntilAutoPause=seconds_until_auto_pause
    )


def create_db_cluster_instance(
    *,
    identifier: str,
    cluster_identifier: str,
    engine: str,
    instance_class: str = "db.serverless",
    tags: dict[str, str],
    region: str | None = None,
) -> dict:
    """Add an instance to a cluster (``db.serverless`` scales within the cluster's ACUs)."""
    return call(
        client("rds", region).create_db_instance,
        DBInstanceIdentifier=identifier,
        DBClusterIdentifier=cluster_identifier,
        DBInstanceClass=instance_class,
        Engine=engine,
        PubliclyAccessible=False,
        Tags=tag_list(tags),
    )["DBInstance"]


def modify_db_cluster(
    *,
    identifier: str,
    min_capacity: float | None = None,
    max_capacity: float | None = None,
    backup_retention_days: int | None = None,
    deletion_protection: bool | None = None,
    master_password: str | None = None,
    seconds_until_auto_pause: int | None = None,
    backup_window: str | None = None,
    maintenance_window: str | None = None,
    engine_version: str | None = None,
    allow_major_version_upgrade: bool | None = None,
    apply_immediately: bool = True,
    region: str | None = None,
) -> dict:
    """Change only what is given. Capacity needs both bounds: pass both or neither (and
    them with ``seconds_until_auto_pause``: it is part of the same scaling setting)."""
    scaling = None
    if min_capacity is not None or max_capacity is not None or seconds_until_auto_pause:
        if min_capacity is None or max_capacity is None:
            raise ValueError("modify_db_cluster: pass both min_capacity and max_capacity")
        scaling = _scaling(min_capacity, max_capacity, seconds_until_auto_pause)
    return call(
        client("rds", region).modify_db_cluster,
        DBClusterIdentifier=identifier,
        ApplyImmediately=apply_immediately,
        **_none_dropped(
            ServerlessV2ScalingConfiguration=scaling,
            BackupRetentionPeriod=backup_retention_days,
            DeletionProtection=deletion_protection,
            MasterUserPassword=master_password,
            PreferredBackupWindow=backup_window,
            PreferredMaintenanceWindow=maintenance_window,
            EngineVersion=engine_version,
            AllowMajorVersionUpgrade=allow_major_version_upgrade,
        ),
    )["DBCluster"]


def describe_db_engine_versions(*, engine: str, region: str | None = None) -> list[str]:
    """The versions of ``engine`` RDS offers in the region (status available), as given."""
    items = _all_pages(
        client("rds", region).describe_db_engine_versions,
        "DBEngineVersions",
        Engine=engine,
    )
    return [v["EngineVersion"] for v in items if v.get("Status", "available") == "available"]


def delete_db_cluster(
    *, identifier: str, skip_final_snapshot: bool = True, region: str | None = None
) -> dict:
    """Start deleting a cluster; AWS refuses while it still has instances."""
    return call(
        client("rds", region).delete_db_cluster,
        DBClusterIdentifier=identifier,
        SkipFinalSnapshot=skip_final_snapshot,
    )["DBCluster"]


# --- RDS Proxy --------------------------------------------------------------------------


def describe_db_proxy(*, name: str, region: str | None = None) -> dict | None:
    try:
        resp = call(client("rds", region).describe_db_proxies, DBProxyName=name)
    except AwsNotFound:
        return None
    proxies = resp.get("DBProxies", [])
    return proxies[0] if proxies else None


def create_db_proxy(
    *,
    name: str,
    secret_arn: str,
    role_arn: str,
    subnet_ids: list[str],
    security_group_ids: list[str],
    tags: dict[str, str],
    region: str | None = None,
) -> dict:
    """Start creating a PostgreSQL proxy that logs in with the credentials in ``secret_arn``
    (read through ``role_arn``); clients must use TLS and SCRAM."""
    return call(
        client("rds", region).create_db_proxy,
        DBProxyName=name,
        EngineFamily="POSTGRESQL",
        Auth=[
            {
                "AuthScheme": "SECRETS",
                "SecretArn": secret_arn,
                "IAMAuth": "DISABLED",
                "ClientPasswordAuthType": "POSTGRES_SCRAM_SHA_256",
            }
        ],
        RoleArn=role_arn,
        VpcSubnetIds=subnet_ids,
        VpcSecurityGroupIds=security_group_ids,
        RequireTLS=True,
        Tags=tag_list(tags),
    )["DBProxy"]


def delete_db_proxy(*, name: str, region: str | None = None) -> dict | None:
    """Start deleting a proxy; None when it was not there."""
    try:
        return call(client("rds", region).delete_db_proxy, DBProxyName=name)["DBProxy"]
    except AwsNotFound:
        return None


def list_db_proxy_targets(*, name: str, region: str | None = None) -> list[dict]:
    resp = call(client("rds", region).describe_db_proxy_targets, DBProxyName=name)
    return resp.get("Targets", [])


def register_db_proxy_targets(
    *,
    name: str,
    instance_identifiers: list[str] | None = None,
    cluster_identifiers: list[str] | None = None,
    target_group: str = "default",
    region: str | None = None,
) -> list[dict]:
    kwargs: dict[str, Any] = {}
    if instance_identifiers:
        kwargs["DBInstanceIdentifiers"] = instance_identifiers
    if cluster_identifiers:
        kwargs["DBClusterIdentifiers"] = cluster_identifiers
    resp = call(
        client("rds", region).register_db_proxy_targets,
        DBProxyName=name,
        TargetGroupName=target_group,
        **kwargs,
    )
    return resp.get("DBProxyTargets", [])


# --- snapshots --------------------------------------------------------------------------


def create_db_snapshot(
    *, identifier: str, instance_identifier: str, tags: dict[str, str], region: str | None = None
) -> dict:
    return call(
        client("rds", region).create_db_snapshot,
        DBSnapshotIdentifier=identifier,
        DBInstanceIdentifier=instance_identifier,
        Tags=tag_list(tags),
    )["DBSnapshot"]


def describe_db_snapshot(*, identifier: str, region: str | None = None) -> dict | None:
    try:
        resp = call(client("rds", region).describe_db_snapshots, DBSnapshotIdentifier=identifier)
    except AwsNotFound:
        return None
    snapshots = resp.get("DBSnapshots", [])
    return snapshots[0] if snapshots else None


def list_db_snapshots(*, instance_identifier: str, region: str | None = None) -> list[dict]:
    """Manual snapshots of one instance (also after the instance itself is gone)."""
    return _all_pages(
        client("rds", region).describe_db_snapshots,
        "DBSnapshots",
        DBInstanceIdentifier=instance_identifier,
        SnapshotType="manual",
    )


def create_db_cluster_snapshot(
    *, identifier: str, cluster_identifier: str, tags: dict[str, str], region: str | None = None
) -> dict:
    return call(
        client("rds", region).create_db_cluster_snapshot,
        DBClusterSnapshotIdentifier=identifier,
        DBClusterIdentifier=cluster_identifier,
        Tags=tag_list(tags),
    )["DBClusterSnapshot"]


def describe_db_cluster_snapshot(*, identifier: str, region: str | None = None) -> dict | None:
    try:
        resp = call(
            client("rds", region).describe_db_cluster_snapshots,
            DBClusterSnapshotIdentifier=identifier,
        )
    except AwsNotFound:
        return None
    snapshots = resp.get("DBClusterSnapshots", [])
    return snapshots[0] if snapshots else None


def list_db_cluster_snapshots(*, cluster_identifier: str, region: str | None = None) -> list[dict]:
    """Manual snapshots of one cluster (also after the cluster itself is gone)."""
    return _all_pages(
        client("rds", region).describe_db_cluster_snapshots,
        "DBClusterSnapshots",
        DBClusterIdentifier=cluster_identifier,
        SnapshotType="manual",
    )

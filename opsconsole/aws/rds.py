"""RDS: database instances and clusters."""

from __future__ import annotations

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
    region: str | None = None,
) -> dict:
    """Start creating a private, encrypted instance; it is ``creating`` for minutes in AWS.

    The master password goes to RDS and nowhere else; callers keep it in Secrets Manager.
    """
    return call(
        client("rds", region).create_db_instance,
        DBInstanceIdentifier=identifier,
        DBInstanceClass=instance_class,
        Engine=engine,
        EngineVersion=engine_version,
        AllocatedStorage=allocated_storage_gb,
        StorageType="gp3",
        StorageEncrypted=True,
        MasterUsername=master_username,
        MasterUserPassword=master_password,
        DBSubnetGroupName=subnet_group,
        VpcSecurityGroupIds=security_group_ids,
        PubliclyAccessible=False,
        MultiAZ=False,
        BackupRetentionPeriod=7,
        CopyTagsToSnapshot=True,
        DeletionProtection=False,
        Tags=tag_list(tags),
    )["DBInstance"]

"""RDS: database instances and clusters."""

from __future__ import annotations

from opsconsole.aws.clients import call, client
from opsconsole.aws.errors import AwsNotFound


def describe_db_instance(*, identifier: str, region: str | None = None) -> dict | None:
    try:
        resp = call(
            client("rds", region).describe_db_instances, DBInstanceIdentifier=identifier
        )
    except AwsNotFound:
        return None
    instances = resp.get("DBInstances", [])
    return instances[0] if instances else None

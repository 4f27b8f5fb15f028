"""What a dedicated instance and an Aurora cluster share on the RDS side: their endpoint,
their record, waiting while RDS is busy, and the master password RDS was last given.

Records hold an HMAC fingerprint of the password last given to RDS (never the password),
so a replaced secret is noticed and applied.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from django.conf import settings

from opsconsole.aws import rds
from opsconsole.aws.errors import AwsError
from opsconsole.jobs.registry import StepWait
from tenants import resources
from tenants.models import Tenant, TenantResource
from tenants.provisioning.database_common import POSTGRES_PORT

logger = logging.getLogger(__name__)

RDS_RETRY_S = 30
FINGERPRINT_KEY = "password_hmac"


def subnet_group_name() -> str:
    """The baseline DB subnet group (the sandbox seed and the platform team create it)."""
    return f"{settings.BASELINE['vpc_name']}-private"


def fingerprint(password: str) -> str:
    """Tells whether RDS got this password, without storing it (keyed, truncated)."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, password.encode(), hashlib.sha256).hexdigest()[:24]


def endpoint_of(resource: dict) -> tuple[str, int]:
    """(address, port) of an RDS instance (``Endpoint``) or cluster (``Endpoint``, ``Port``)."""
    endpoint = resource.get("Endpoint")
    if isinstance(endpoint, dict):
        return endpoint.get("Address") or "", int(endpoint.get("Port") or POSTGRES_PORT)
    return endpoint or "", int(resource.get("Port") or POSTGRES_PORT)


def effective(resource: dict, key: str, pending_key: str | None = None) -> Any:
    """A setting as it will be once pending modifications are applied."""
    pending = resource.get("PendingModifiedValues") or {}
    return pending.get(pending_key or key, resource.get(key))


def record_rds(
    tenant: Tenant, *, kind: str, resource: dict, fingerprint: str | None = None
) -> TenantResource:
    """Record an instance (kind ``db_instance``) or cluster (``db_cluster``)."""
    if kind == "db_cluster":
        identifier = resource["DBClusterIdentifier"]
        arn = resource.get("DBClusterArn", "")
        status = resource.get("Status", "")
        details: dict[str, Any] = {
            "engine": resource.get("Engine", ""),
            "engine_version": resource.get("EngineVersion", ""),
            "scaling": resource.get("ServerlessV2ScalingConfiguration") or {},
            "reader_endpoint": resource.get("ReaderEndpoint", ""),
        }
    else:
        identifier = resource["DBInstanceIdentifier"]
        arn = resource.get("DBInstanceArn", "")
        status = resource.get("DBInstanceStatus", "")
        details = {
            "engine": resource.get("Engine", ""),
            "engine_version": resource.get("EngineVersion", ""),
            "instance_class": resource.get("DBInstanceClass", ""),
            "allocated_storage_gb": resource.get("AllocatedStorage"),
            "cluster": resource.get("DBClusterIdentifier", ""),
        }
    host, port = endpoint_of(resource)
    details.update(
        {"status": status, "endpoint": f"{host}:{port}" if host else "", "host": host, "port": port}
    )
    if fingerprint is None:
        existing = resources.find(tenant, kind=kind, name=identifier)
        fingerprint = (existing.details or {}).get(FINGERPRINT_KEY) if existing else None
    if fingerprint:
        details[FINGERPRINT_KEY] = fingerprint
    return resources.record(
        tenant, kind=kind, name=identifier, identifier=identifier, arn=arn, details=details
    )


def wait_unless_available(status: str, what: str = "RDS") -> None:
    if status != "available":
        raise StepWait(f"waiting for {what} ({status or 'unknown'})", retry_in=RDS_RETRY_S)


def busy(exc: AwsError, status: str) -> StepWait:
    return StepWait(f"waiting for RDS ({status or exc.code})", retry_in=RDS_RETRY_S)


def rds_change(fn: Any, **kwargs: Any) -> dict:
    """A modify call; AWS refusing because the resource is busy means: try again later."""
    try:
        return fn(**kwargs)
    except AwsError as exc:
        if exc.permanent:
            raise
        raise StepWait(f"waiting for RDS ({exc.code})", retry_in=RDS_RETRY_S) from exc


def apply_master_password(
    tenant: Tenant, *, kind: str, resource: dict, arn: str, password: str
) -> tuple[dict, bool]:
    """Give RDS the secret's password when it is not the one RDS last got from us."""
    identifier = resource["DBClusterIdentifier" if kind == "db_cluster" else "DBInstanceIdentifier"]
    existing = resources.find(tenant, kind=kind, name=identifier)
    given = fingerprint(password)
    if existing and (existing.details or {}).get(FINGERPRINT_KEY) == given:
        return resource, False
    logger.info("Setting the master password of %s %s from secret %s", kind, identifier, arn)
    modify = rds.modify_db_cluster if kind == "db_cluster" else rds.modify_db_instance
    resource = rds_change(
        modify, identifier=identifier, master_password=password, region=tenant.region
    )
    record_rds(tenant, kind=kind, resource=resource, fingerprint=given)
    return resource, True

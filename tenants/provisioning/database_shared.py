"""A tenant database on the shared RDS instance: a login role and a database it owns, made
through the instance's master credentials (``BASELINE["shared_db_master_secret"]``), at
the host and port that secret gives.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.conf import settings

from opsconsole.aws import secrets
from opsconsole.aws.errors import AwsNotFound
from tenants import naming, resources
from tenants.models import Isolation, Tenant
from tenants.provisioning.common import Drift
from tenants.provisioning.database_common import (
    POSTGRES_PORT,
    connect,
    database_state,
    database_state_drift,
    drop_database_and_role,
    ensure_login_role,
    ensure_owned_database,
    mark_deleted,
)
from tenants.provisioning.database_secret import ensure_db_secret

logger = logging.getLogger(__name__)


def master_secret(region: str) -> dict:
    """The shared instance's master credentials (host, port, username, password, dbname)."""
    return secrets.get_secret_json(
        secret_id=settings.BASELINE["shared_db_master_secret"], region=region
    )


def master_endpoint(master: dict) -> tuple[str, int]:
    return master["host"], int(master.get("port") or POSTGRES_PORT)


@contextmanager
def master_connection(master: dict) -> Iterator[psycopg.Connection]:
    """Connected to the shared instance as its master user."""
    host, port = master_endpoint(master)
    with connect(
        host=host,
        port=port,
        user=master["username"],
        password=master.get("password"),
        dbname=master.get("dbname") or "postgres",
    ) as conn:
        yield conn


def ensure_shared_database(tenant: Tenant) -> dict[str, Any]:
    """Onboarding step 2 for a shared tenant: its role (the secret's password) and its
    database on the shared instance."""
    slug, region = tenant.slug, tenant.region
    master = master_secret(region)
    host, port = master_endpoint(master)
    arn, value, _ = ensure_db_secret(tenant, known={"host": host, "port": port})
    dbname, role = naming.db_name(slug), naming.db_user(slug)
    with master_connection(master) as conn:
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


def drop_shared_database(tenant: Tenant) -> list[str]:
    """Offboarding: the tenant's database and role go from the shared instance."""
    dbname, role = naming.db_name(tenant.slug), naming.db_user(tenant.slug)
    with master_connection(master_secret(tenant.region)) as conn:
        dropped = drop_database_and_role(conn, dbname=dbname, role=role)
    mark_deleted(tenant, kind="database", name=dbname)
    return dropped


def shared_drift(tenant: Tenant) -> tuple[list[Drift], tuple[str, int] | None]:
    """The master secret, the instance answering, the tenant's role and database; with
    the endpoint the tenant's secret should name (None when unknown)."""
    dbname, role = naming.db_name(tenant.slug), naming.db_user(tenant.slug)
    master_name = settings.BASELINE["shared_db_master_secret"]
    try:
        master = master_secret(tenant.region)
    except AwsNotFound:
        return [Drift("shared_db_secret", master_name, "exists", True, False)], None
    endpoint = master_endpoint(master)
    try:
        with master_connection(master) as conn:
            state = database_state(conn, dbname=dbname, role=role)
    except psycopg.OperationalError as exc:
        return [Drift("database", dbname, "reachable", True, str(exc).strip()[:200])], endpoint
    return database_state_drift(dbname, role, state), endpoint

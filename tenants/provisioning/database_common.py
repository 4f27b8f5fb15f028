"""What every kind of tenant database shares: the settings this package reads, a connection
to a database endpoint as AWS reports it, the statements RDS's master user runs for a
tenant (a login role, a database it owns) and the drift they are checked by.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.conf import settings
from psycopg import sql

from tenants import resources
from tenants.models import ResourceStatus, Tenant
from tenants.provisioning.common import Drift

POSTGRES_PORT = 5432
POSTGRES_ENGINE = "postgres"
CONNECT_TIMEOUT_S = 10
APPLICATION_NAME = "opsconsole-provision"

# Defaults of settings this package reads (settings.py may define any of them).
DEFAULTS: dict[str, Any] = {
    "TENANT_DB_ENGINE_VERSION": "16.4",
    "TENANT_AURORA_ENGINE_VERSION": "16.4",
    "TENANT_DB_SSLMODE": "prefer",
    # Empty: libpq's default. Production names the shipped RDS CA bundle (settings.py).
    "TENANT_DB_SSLROOTCERT": "",
    "TENANT_DUMP_TIMEOUT_S": 3600,
    "PG_DUMP_PATH": "",
}


def setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


@contextmanager
def connect(
    *, host: str, port: int, user: str, password: str | None, dbname: str
) -> Iterator[psycopg.Connection]:
    """An autocommit connection to an RDS or RDS Proxy endpoint, as AWS reports it.
    Autocommit: CREATE/DROP DATABASE cannot run inside a transaction."""
    kwargs: dict[str, Any] = {"password": password} if password else {}
    with psycopg.connect(
        host=host,
        port=int(port),
        user=user,
        dbname=dbname,
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT_S,
        sslmode=setting("TENANT_DB_SSLMODE"),
        sslrootcert=setting("TENANT_DB_SSLROOTCERT"),
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


# --- records and drift -------------------------------------------------------------------


def mark_deleted(tenant: Tenant, *, kind: str, name: str) -> None:
    resources.mark(tenant, kind=kind, name=name, status=ResourceStatus.DELETED)


def compare(kind: str, name: str, pairs: list[tuple[str, Any, Any]]) -> list[Drift]:
    """A Drift for each ``(field, want, have)`` that differs."""
    return [Drift(kind, name, field, want, have) for field, want, have in pairs if want != have]


def database_state_drift(dbname: str, role: str, state: dict) -> list[Drift]:
    """What ``database_state`` shows missing or open to others."""
    drifts = []
    if not state["role"]:
        drifts.append(Drift("db_role", role, "exists", True, False))
    if not state["database"]:
        drifts.append(Drift("database", dbname, "exists", True, False))
        return drifts
    drifts += compare(
        "database",
        dbname,
        [("owner", role, state["owner"]), ("public_connect", False, state["public_connect"])],
    )
    return drifts

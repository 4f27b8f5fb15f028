"""What RDS does inside a new instance or cluster, done in the sandbox's local PostgreSQL.

SANDBOX ONLY. moto creates RDS instances and Aurora clusters as metadata: nothing listens
at their endpoints and no database exists behind them. Every endpoint maps to the one local
PostgreSQL server (``opsconsole.sandbox.endpoints``), so this module does there what RDS
does at instance creation: the master user (a login role) and the initial database
(``DBName`` / ``DatabaseName``) owned by it; and at deletion, drops them again. Then a
dedicated or serverless tenant's database is a real database, like a shared tenant's, and
its migrations and database numbers are real too.

Unlike RDS, the role gets no CREATEROLE/CREATEDB: all tenants share one local server, and
CONNECT on the database is revoked from PUBLIC so tenants cannot reach each other's.

Production never calls this: the callers check ``settings.SANDBOX`` and so does every
function here.
"""

from __future__ import annotations

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from opsconsole.sandbox.endpoints import sandbox_server_connection
from tenants.provisioning.database import (
    database_state,
    drop_database_and_role,
    ensure_login_role,
    ensure_owned_database,
)


def _superuser_connection(*, host: str, port: int) -> psycopg.Connection:
    if not settings.SANDBOX:
        raise ImproperlyConfigured("RDS emulation only runs in the sandbox (OPSCONSOLE_SANDBOX=1).")
    # Every endpoint maps to the one local server (endpoints.database_address).
    return sandbox_server_connection(application_name="opsconsole-rds-emulation")


def emulate_database_created(
    *, host: str, port: int, dbname: str, username: str, password: str
) -> None:
    """The master role (password as in the tenant's secret) and its database exist."""
    with _superuser_connection(host=host, port=port) as conn:
        ensure_login_role(conn, role=username, password=password)
        ensure_owned_database(conn, dbname=dbname, owner=username)


def emulate_database_deleted(*, host: str, port: int, dbname: str, username: str) -> None:
    """The instance or cluster is gone, and with it its database and master role."""
    with _superuser_connection(host=host, port=port) as conn:
        drop_database_and_role(conn, dbname=dbname, role=username)


def emulated_database_state(*, host: str, port: int, dbname: str, username: str) -> dict:
    """``{"database": bool, "role": bool, "public_connect": bool}`` in the local server."""
    with _superuser_connection(host=host, port=port) as conn:
        return database_state(conn, dbname=dbname, role=username)

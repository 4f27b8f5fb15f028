"""Real PostgreSQL databases, one per tenant, created and dropped around each test.

Names start with ``t_agentmig_`` so they never clash with other test runs on the server.
The runner's migration slots live in the console's test database (hence ``db``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from deployments.migration_files import MigrationSpec
from deployments.migration_runner import DatabaseTarget
from opsconsole.sandbox.endpoints import sandbox_server_connection


def admin_connection():
    return sandbox_server_connection()


def query(target: DatabaseTarget, text: str, params: list | None = None) -> list[tuple]:
    """Rows of one query in the tenant's database, on a connection of its own."""
    with psycopg.connect(
        host=target.host, port=target.port, user=target.user, dbname=target.dbname
    ) as conn:
        return conn.execute(text, params).fetchall()


def spec(version: int, label: str, text: str) -> MigrationSpec:
    return MigrationSpec.from_text(version=version, name=f"{version:04d}_{label}.sql", sql=text)


@pytest.fixture
def server_key() -> str:
    """A server name of the test's own, so slot counts never mix with other tests."""
    return f"test-pg-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_tenant_db(db, server_key) -> Iterator[Callable[[], DatabaseTarget]]:
    created: list[str] = []

    def make() -> DatabaseTarget:
        name = f"t_agentmig_{uuid.uuid4().hex[:12]}"
        with admin_connection() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return DatabaseTarget(
            server_key=server_key,
            host=settings.SANDBOX_PG_HOST,
            port=settings.SANDBOX_PG_PORT,
            user=settings.SANDBOX_PG_USER,
            dbname=name,
        )

    yield make
    with admin_connection() as conn:
        for name in created:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def tenant_db(make_tenant_db) -> DatabaseTarget:
    return make_tenant_db()

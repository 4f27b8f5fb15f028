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
from opsconsole.sandbox.demo_release import DEMO_VERSION
from opsconsole.sandbox.endpoints import sandbox_server_connection
from tenants.models import Tenant
from tests.local_postgres import seed_in_process
from tests.tenants.conftest import drop_tenant_databases, make_tenant, run_job


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


# --- onboarded tenants in in-process moto (rollout and roll back tests) ------------------


@pytest.fixture
def seeded(aws, db):
    """The sandbox baseline and demo release in in-process moto."""
    return seed_in_process()


@pytest.fixture
def t5_dbs():
    drop_tenant_databases("tenant_t5")
    yield
    drop_tenant_databases("tenant_t5")


@pytest.fixture
def fleet(seeded, t5_dbs):
    """make(n): n onboarded tenants on the demo release (the first in ring 0)."""

    def make(n: int, prefix: str = "t5-") -> list[Tenant]:
        tenants = []
        for i in range(n):
            tenant = make_tenant(
                f"{prefix}{i:02d}", ring=0 if i == 0 else 1, desired_release=DEMO_VERSION
            )
            job = run_job("tenant_provision", tenant)
            assert job.status == "succeeded", job.error
            tenant.refresh_from_db()
            assert tenant.current_release == DEMO_VERSION
            tenants.append(tenant)
        return tenants

    return make

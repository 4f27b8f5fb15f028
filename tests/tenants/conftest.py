"""A seeded sandbox account (in-process moto, its shared instance on the local PostgreSQL)
and helpers to run tenant jobs inline."""

from __future__ import annotations

import pytest

from opsconsole.jobs.models import Job
from opsconsole.jobs.runner import job_execute
from opsconsole.jobs.services import job_create
from opsconsole.sandbox.endpoints import sandbox_server_connection
from tenants.models import Tenant
from tests.local_postgres import seed_in_process


@pytest.fixture
def seeded(aws, db):
    return seed_in_process()


def _admin_conn():
    return sandbox_server_connection()


def drop_tenant_databases(prefix: str) -> None:
    with _admin_conn() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{prefix}%"]
        ).fetchall()
        for (name,) in rows:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [name],
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        for (role,) in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [f"{prefix}%"]
        ).fetchall():
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def tenant_dbs():
    """Drops the tenant_t9* databases and roles these tests make, before and after."""
    drop_tenant_databases("tenant_t9")
    yield
    drop_tenant_databases("tenant_t9")


def make_tenant(slug: str, **spec) -> Tenant:
    return Tenant.objects.create(name=slug.title(), slug=slug, region="us-east-1", **spec)


def run_job(kind: str, tenant: Tenant, *, max_rounds: int = 20) -> Job:
    """Create a job and run it inline until it ends (waits are skipped by clearing
    run_after, as a worker would after the countdown)."""
    job = job_create(kind=kind, subject_type="tenant", subject_id=tenant.slug, unique=False)
    for _ in range(max_rounds):
        job_execute(job.pk, owner="test-worker")
        job.refresh_from_db()
        if job.is_finished:
            return job
        Job.objects.filter(pk=job.pk).update(run_after=None)
    raise AssertionError(f"{kind} still {job.status} after {max_rounds} rounds")

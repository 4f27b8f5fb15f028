"""The web process holds no database credentials: numbers and plans that need a tenant
database (or the shared instance's master secret) are read by workers and cached.

The guard replaces psycopg.connect and the secret reads for the length of each request:
any connection to a database other than the console's own, any GetSecretValue, fails the
test (the pages swallow errors into notes, so the calls are recorded, not only refused).
"""

# ruff: noqa: F811 - pytest fixtures imported from test_health_pages are parameters here
from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from deployments.models import Release, ReleaseMigration
from opsconsole.aws import secrets
from opsconsole.aws.clients import _session
from opsconsole.sandbox.endpoints import sandbox_server_connection
from tenants import naming, tasks
from tenants.health import readings
from tenants.models import Isolation, TenantResource

from .test_health_pages import (  # noqa: F401 - fixtures
    REGION,
    active_tenant,
    health_cache_prefix,
    health_url,
    shared_master_secret,
    viewer,
)

RELEASE = "1.4.0"


@contextmanager
def no_tenant_reads() -> Iterator[list[str]]:
    """Every tenant connection and secret read attempted inside, as a list (empty: good)."""
    attempts: list[str] = []
    console_db = settings.DATABASES["default"]["NAME"]
    real_connect = psycopg.connect

    def connect(*args, **kwargs):
        dbname = kwargs.get("dbname") or kwargs.get("conninfo") or (args[0] if args else "")
        if dbname != console_db:
            attempts.append(f"psycopg.connect to {dbname!r}")
            raise AssertionError("a web request opened a tenant database connection")
        return real_connect(*args, **kwargs)

    def secret_read(**kwargs):
        attempts.append(f"secret {kwargs.get('secret_id')}")
        raise AssertionError("a web request read a secret value")

    def boto_call(model, **kwargs):
        if model.name == "GetSecretValue":
            attempts.append(f"GetSecretValue {kwargs['params'].get('SecretId')}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg, "connect", connect)
        patch.setattr(secrets, "get_secret_json", secret_read)
        patch.setattr(secrets, "read_secret_json", secret_read)
        _session().events.register("before-call", boto_call, unique_id="test-no-secret-reads")
        try:
            yield attempts
        finally:
            _session().events.unregister("before-call", unique_id="test-no-secret-reads")


@pytest.fixture
def sent(monkeypatch):
    """Tasks the pages asked for (send_task by name), as (name, args)."""
    from celery import current_app

    asked: list[tuple[str, list]] = []
    monkeypatch.setattr(
        current_app, "send_task", lambda name, args=None, **kw: asked.append((name, args))
    )
    return asked


@pytest.fixture
def tenant_pg():
    """A real database for the tenant, with its login in a Secrets Manager secret (moto)."""
    name = f"t_agentrd_{uuid.uuid4().hex[:10]}"
    with sandbox_server_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    with sandbox_server_connection() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _with_release_and_secret(tenant, dbname: str) -> None:
    release = Release.objects.create(version=RELEASE, artifact_type="zip")
    for version, name, text in (
        (1, "0001_customers.sql", "CREATE TABLE customers (id bigint PRIMARY KEY);"),
        (2, "0002_orders.sql", "CREATE TABLE orders (id bigint PRIMARY KEY);"),
    ):
        ReleaseMigration.objects.create(
            release=release,
            version=version,
            name=name,
            sql=text,
            sha256=hashlib.sha256(text.encode()).hexdigest(),
        )
    created = secrets.create_secret_json(
        name=naming.db_secret_name(tenant.slug),
        value={
            "host": settings.SANDBOX_PG_HOST,
            "port": settings.SANDBOX_PG_PORT,
            "dbname": dbname,
            "username": settings.SANDBOX_PG_USER,
            "password": settings.DATABASES["default"].get("PASSWORD") or "unused",
        },
        description="test",
        tags={},
        region=REGION,
    )
    TenantResource.objects.create(
        tenant=tenant, kind="db_secret", name=created["Name"], arn=created["ARN"], region=REGION
    )


def test_pages_open_no_tenant_connection_and_read_no_secret(
    shared_master_secret,  # the old code would have read it
    viewer,
    sent,
    tenant_pg,
    django_capture_on_commit_callbacks,
):
    tenant = active_tenant("t9guard", isolation=Isolation.SHARED)
    _with_release_and_secret(tenant, tenant_pg)
    pages = {
        "tenant": f"/tenants/{tenant.slug}/",
        "health": health_url(tenant.slug),
        "schema plan": f"/schemas/{tenant.slug}/",
        "schemas": "/schemas/",
        "fleet": "/tenants/",
    }
    with no_tenant_reads() as attempts, django_capture_on_commit_callbacks(execute=True):
        bodies = {what: viewer.get(url) for what, url in pages.items()}
    assert attempts == []
    assert {what: r.status_code for what, r in bodies.items()} == dict.fromkeys(pages, 200)
    # Nothing read yet: the pages say so and asked the workers (once each).
    assert "reading…" in bodies["health"].content.decode()
    assert 'hx-trigger="every 3s"' in bodies["health"].content.decode()  # soon, not in 60 s
    assert "reading…" in bodies["schema plan"].content.decode()
    instance = settings.BASELINE["shared_db_instance"]
    assert sorted(sent) == [
        ("deployments.tasks.schema_read_plan", [tenant.slug]),
        ("tenants.tasks.health_read_shared_db", [REGION, instance, None]),
    ]


def test_workers_read_and_the_pages_show_it_with_its_age(
    shared_master_secret,
    viewer,
    sent,
    tenant_pg,
    tenant_dbs,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    from deployments import tasks as deployment_tasks

    tenant = active_tenant("t9worker", isolation=Isolation.SHARED)
    _with_release_and_secret(tenant, tenant_pg)
    with sandbox_server_connection() as conn:
        conn.execute('CREATE DATABASE "tenant_t9worker"')
    instance = settings.BASELINE["shared_db_instance"]
    # What the worker does when asked (tasks called in process: no broker in unit tests).
    tasks.health_read_shared_db(REGION, instance)
    deployment_tasks.schema_read_plan(tenant.slug)

    with django_capture_on_commit_callbacks(execute=True):
        health = viewer.get(health_url(tenant.slug)).content.decode()
        plan = viewer.get(f"/schemas/{tenant.slug}/").content.decode()
    assert sent == []  # fresh readings: nobody asks again
    assert "reading…" not in health and "reading…" not in plan
    assert "<code>tenant_t9worker</code> on <code>opsconsole-shared-pg</code>" in health
    assert "read 0 s ago by a worker" in health
    assert "Read 0 s ago by a worker" in plan
    assert "<code>0001_customers.sql</code>" in plan and "<code>0002_orders.sql</code>" in plan
    assert "The database is at version none." in plan

    # Two minutes later the reading is due: the page still shows it, and asks for a new one.
    later = readings.clock() + 120
    monkeypatch.setattr(readings, "clock", lambda: later)
    with django_capture_on_commit_callbacks(execute=True):
        plan = viewer.get(f"/schemas/{tenant.slug}/").content.decode()
        viewer.get(f"/schemas/{tenant.slug}/")  # a second viewer does not ask twice
    assert "Read 2 min ago by a worker" in plan
    assert sent == [("deployments.tasks.schema_read_plan", [tenant.slug])]


def test_the_plan_fragment_polls_only_while_reading(viewer, sent, db, aws):
    tenant = active_tenant("t9poll")
    Release.objects.create(version=RELEASE, artifact_type="zip")
    fragment = viewer.get(f"/schemas/{tenant.slug}/", HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<div id="schema-plan" hx-get=') and "reading…" in fragment
    # The worker finds no secret recorded: the page says why, and stops polling.
    from deployments.schema_plans import schema_plan_read

    schema_plan_read(slug=tenant.slug)
    fragment = viewer.get(f"/schemas/{tenant.slug}/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-get" not in fragment
    assert "database secret is not recorded yet" in fragment


def test_beat_reads_every_shared_instance_a_live_tenant_uses(db, aws, monkeypatch):
    active_tenant("t9beat1", isolation=Isolation.SHARED)
    active_tenant("t9beat2", isolation=Isolation.SHARED)
    active_tenant("t9beat3")  # dedicated: CloudWatch has its numbers
    taken: list[tuple] = []
    monkeypatch.setattr(tasks.health_read_shared_db, "delay", lambda *a: taken.append(a))
    assert tasks.health_read_shared_dbs() == 1
    assert taken == [(REGION, settings.BASELINE["shared_db_instance"], None)]
    assert "health-read-shared-dbs" in settings.CELERY_BEAT_SCHEDULE


def test_a_broker_outage_costs_the_reading_not_the_page(
    viewer, db, aws, monkeypatch, django_capture_on_commit_callbacks
):
    from celery import current_app

    def down(*args, **kwargs):
        raise ConnectionRefusedError("the broker is down")

    monkeypatch.setattr(current_app, "send_task", down)
    tenant = active_tenant("t9nobroker", isolation=Isolation.SHARED)
    with django_capture_on_commit_callbacks(execute=True):
        page = viewer.get(health_url(tenant.slug))
    assert page.status_code == 200 and "reading…" in page.content.decode()

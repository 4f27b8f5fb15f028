"""Restore a customer's pg_dump into its tenant database (issue 15, "Bring the data").

Real PostgreSQL (the sandbox's server), real pg_dump / pg_restore / psql, in-process moto
for S3 and the tenant's secret; the job runs inline as a worker would run it."""

from __future__ import annotations

import subprocess

import psycopg
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from psycopg import sql

from opsconsole.aws.clients import client as aws_client
from opsconsole.jobs.models import Job, JobStatus
from opsconsole.jobs.runner import job_execute
from opsconsole.sandbox.demo_release import DEMO_VERSION
from opsconsole.sandbox.endpoints import sandbox_server_connection
from tenants import restore
from tenants.models import Tenant
from tenants.provisioning import database_restore as dr
from tenants.provisioning.database_dump import find_pg_tool
from tests.tenants.conftest import drop_tenant_databases, make_tenant, run_job

SOURCE_DB = "restore_src_rs"
ROWS = 250


@pytest.fixture
def rs_dbs():
    drop_tenant_databases("tenant_rs")
    _drop_source()
    yield
    drop_tenant_databases("tenant_rs")
    _drop_source()


def _drop_source() -> None:
    with sandbox_server_connection() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SOURCE_DB))
        )


def _server():
    with sandbox_server_connection() as conn:
        info = conn.info
        return info.host, info.port, info.user, conn.info.server_version // 10000


def _source_dump(fmt: str) -> bytes:
    """A customer's database as their team would dump it: the demo app's notes table
    (as its migration 0001 makes it) with rows, and a table of their own."""
    host, port, user, major = _server()
    with sandbox_server_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SOURCE_DB)))
    with psycopg.connect(host=host, port=port, user=user, dbname=SOURCE_DB, autocommit=True) as db:
        db.execute(
            "CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL, "
            "created_at timestamptz NOT NULL DEFAULT now())"
        )
        db.execute(
            "INSERT INTO notes (body) SELECT 'note ' || n FROM generate_series(1, %s) n", [ROWS]
        )
        db.execute("CREATE TABLE invoices (id int PRIMARY KEY, total numeric)")
        db.execute("INSERT INTO invoices SELECT n, n * 1.5 FROM generate_series(1, 40) n")
    pg_dump = find_pg_tool("pg_dump", major)
    out = subprocess.run(
        [
            pg_dump,
            f"--host={host}",
            f"--port={port}",
            f"--username={user}",
            f"--dbname={SOURCE_DB}",
            f"--format={fmt}",
            "--no-owner",
        ],
        capture_output=True,
        check=True,
    )
    return out.stdout


@pytest.fixture
def tenant(seeded, rs_dbs) -> Tenant:
    tenant = make_tenant("rs-a", desired_release=DEMO_VERSION)
    job = run_job("tenant_provision", tenant)
    assert job.status == JobStatus.SUCCEEDED, job.error
    tenant.refresh_from_db()
    return tenant


def _tenant_rows(tenant: Tenant, query: str):
    host, port, user, _major = _server()
    with psycopg.connect(
        host=host, port=port, user=user, dbname=f"tenant_{tenant.slug.replace('-', '_')}"
    ) as db:
        return db.execute(query).fetchall()


def _run(job: Job) -> Job:
    for _ in range(10):
        job_execute(job.pk, owner="test-worker")
        job.refresh_from_db()
        if job.is_finished:
            return job
        Job.objects.filter(pk=job.pk).update(run_after=None)
    raise AssertionError(job.status)


def _post(client, tenant, **fields):
    data = {"mode": dr.REPLACE, "confirm": tenant.slug, **fields}
    return client.post(f"/tenants/{tenant.slug}/restore/", data)


def test_a_custom_dump_uploaded_in_the_console_is_restored_as_the_tenants_role(
    tenant, client_for, admin_user
):
    dump = _source_dump("custom")
    answer = _post(client_for(admin_user), tenant, dump=SimpleUploadedFile("acme.dump", dump))
    assert answer.status_code == 302, answer.content.decode()[:2000]
    job = Job.objects.get(kind=restore.RESTORE_KIND)
    assert answer["Location"] == f"/jobs/{job.pk}/"
    # Stored in S3, not in the console's database.
    stored = aws_client("s3").get_object(Bucket=job.params["bucket"], Key=job.params["key"])
    assert stored["Body"].read() == dump
    job = _run(job)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert _tenant_rows(tenant, "SELECT count(*) FROM notes") == [(ROWS,)]
    assert _tenant_rows(tenant, "SELECT count(*), sum(total) FROM invoices")[0][0] == 40
    # Every restored object belongs to the tenant's own role, not the master.
    owners = _tenant_rows(
        tenant, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
    )
    assert owners == [("tenant_rs_a",)]
    restored = job.steps.get(name="restore").output
    assert restored["total_items"] > 0 and restored["mode"] == dr.REPLACE
    # The release's migration history survives: the next deploy applies only what is new.
    assert _tenant_rows(tenant, "SELECT count(*) FROM opsconsole_schema_history")[0][0] >= 1

    # The step running again (a crash after the commit) restores nothing twice.
    step = job.steps.get(name="restore")
    again = restore.step_restore(job, step)
    assert again["restored"].startswith("already")
    assert _tenant_rows(tenant, "SELECT count(*) FROM notes") == [(ROWS,)]


def test_a_plain_dump_in_s3_stops_at_the_first_error_and_leaves_nothing(tenant, admin_user):
    # A plain dump without --clean: its own table first, then a notes table the
    # release's migration made already.
    dump = _source_dump("plain")
    aws_client("s3").put_object(Bucket="opsconsole-artifacts", Key="imports/acme.sql", Body=dump)
    job = restore.restore_start(
        tenant, mode=dr.AS_IS, s3_uri="s3://opsconsole-artifacts/imports/acme.sql"
    )
    assert job.params["format"] == dr.PLAIN
    job = _run(job)
    assert job.status == JobStatus.FAILED
    assert 'relation "notes" already exists' in job.error, job.error
    # One transaction: the invoices table the dump made before the error is gone too.
    assert _tenant_rows(tenant, "SELECT to_regclass('public.invoices')") == [(None,)]
    assert _tenant_rows(tenant, "SELECT count(*) FROM notes") == [(0,)]


def test_bad_input_is_refused_before_anything_runs(tenant, client_for, admin_user, viewer_user):
    admin = client_for(admin_user)
    refused = _post(admin, tenant, dump=SimpleUploadedFile("x.zip", b"PK\x03\x04 not a dump"))
    assert refused.status_code == 400
    assert "x.zip: This is a zip archive, not a pg_dump file" in refused.content.decode()
    binary = _post(admin, tenant, dump=SimpleUploadedFile("x.bin", b"\x00\x01\x02garbage"))
    assert "This is not a pg_dump file" in binary.content.decode()
    missing = _post(admin, tenant, s3_uri="s3://opsconsole-artifacts/none.dump")
    assert "Cannot read s3://opsconsole-artifacts/none.dump" in missing.content.decode()
    wrong = _post(admin, tenant, s3_uri="https://example.com/x.dump")
    assert "is not an s3://bucket/key URI" in wrong.content.decode()
    unconfirmed = _post(
        admin, tenant, confirm="nope", dump=SimpleUploadedFile("a.dump", b"PGDMP...")
    )
    assert f"Type {tenant.slug} to confirm" in unconfirmed.content.decode()
    assert not Job.objects.filter(kind=restore.RESTORE_KIND).exists()
    assert client_for(viewer_user).get(f"/tenants/{tenant.slug}/restore/").status_code == 403


def test_a_tenant_without_a_database_cannot_restore(seeded, db):
    tenant = make_tenant("rs-none", isolation="none", status="active")
    with pytest.raises(restore.RestoreRefused, match="brings its own database"):
        restore.restore_start(tenant, mode=dr.REPLACE, s3_uri="s3://b/k")


def test_ci_restores_from_s3_through_the_api(tenant, admin_user, operator_user, client):
    from tests.api.conftest import auth

    dump = _source_dump("custom")
    aws_client("s3").put_object(Bucket="opsconsole-artifacts", Key="imports/a.dump", Body=dump)
    body = {"s3_uri": "s3://opsconsole-artifacts/imports/a.dump", "confirm": tenant.slug}
    url = f"/api/v1/tenants/{tenant.slug}/restore"
    assert client.post(url, body, "application/json", **auth(operator_user)).status_code == 403
    answer = client.post(url, body, "application/json", **auth(admin_user))
    assert answer.status_code == 202, answer.content
    job = _run(Job.objects.get(pk=answer.json()["job"]["id"]))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert _tenant_rows(tenant, "SELECT count(*) FROM notes") == [(ROWS,)]
    # A second restore of the same dump, data only: the rows the first one made are there.
    again = client.post(url, body | {"mode": "data-only"}, "application/json", **auth(admin_user))
    failed = _run(Job.objects.get(pk=again.json()["job"]["id"]))
    assert failed.status == JobStatus.FAILED
    assert "duplicate key value violates unique constraint" in failed.error
    assert _tenant_rows(tenant, "SELECT count(*) FROM notes") == [(ROWS,)]


def test_onboarding_restores_the_dump_it_names_once_the_stack_is_up(
    seeded, rs_dbs, client, admin_user
):
    from tests.api.conftest import auth

    dump = _source_dump("custom")
    aws_client("s3").put_object(Bucket="opsconsole-artifacts", Key="imports/b.dump", Body=dump)
    answer = client.post(
        "/api/v1/tenants/",
        {
            "name": "Rs B",
            "slug": "rs-b",
            "release": DEMO_VERSION,
            "restore_from": "s3://opsconsole-artifacts/imports/b.dump",
        },
        "application/json",
        **auth(admin_user),
    )
    assert answer.status_code == 201, answer.content
    provision = _run(Job.objects.get(pk=answer.json()["job"]["id"]))
    assert provision.status == JobStatus.SUCCEEDED, provision.error
    [job] = Job.objects.filter(kind=restore.RESTORE_KIND, subject_id="rs-b")
    assert job.params["mode"] == dr.REPLACE and job.created_by == admin_user
    job = _run(job)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert _tenant_rows(Tenant.objects.get(slug="rs-b"), "SELECT count(*) FROM notes") == [(ROWS,)]
    bad = client.post(
        "/api/v1/tenants/",
        {"name": "Rs C", "slug": "rs-c", "restore_from": "https://x/y.dump", "dry_run": True},
        "application/json",
        **auth(admin_user),
    )
    assert bad.status_code == 400 and "s3://bucket/key" in bad.content.decode()


def test_a_lost_lease_stops_the_restore_and_rolls_it_back(tenant, monkeypatch, tmp_path):
    """Another worker may take the job over once its lease is gone: this one kills its
    psql at once, and the transaction leaves nothing behind."""
    from opsconsole.jobs import lease

    dump = _source_dump("custom")
    aws_client("s3").put_object(Bucket="opsconsole-artifacts", Key="imports/c.dump", Body=dump)
    job = restore.restore_start(
        tenant, mode=dr.REPLACE, s3_uri="s3://opsconsole-artifacts/imports/c.dump"
    )

    class Beat:
        callbacks: list = []

        def on_lost(self, callback):
            self.callbacks.append(callback)

    beat = Beat()
    monkeypatch.setattr(lease, "current", lambda: beat)
    monkeypatch.setattr(dr, "PROGRESS_EVERY_S", 0.0)
    seen: list[str] = []

    def progress(text: str) -> None:
        seen.append(text)
        if len(seen) == 3:
            for callback in beat.callbacks:
                callback()  # what the heartbeat does when a renewal finds the lease gone

    path = tmp_path / "dump"
    path.write_bytes(dump)
    with pytest.raises(dr.RestoreError, match="lease was lost"):
        dr.restore(
            path=path,
            fmt=dr.CUSTOM,
            mode=dr.REPLACE,
            conn=restore._connection(tenant),
            job_id=job.pk,
            sha256="00",
            on_progress=progress,
        )
    assert _tenant_rows(tenant, "SELECT to_regclass('public.invoices')") == [(None,)]
    assert not dr.already_restored(restore._connection(tenant), job.pk)

"""The database password rotated by the console (staged: the database takes it before any
reader gets it), and a secret changed outside the console noticed and applied."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from opsconsole.aws import secrets
from opsconsole.aws.clients import client
from opsconsole.jobs.models import Job
from opsconsole.jobs.runner import job_execute
from opsconsole.sandbox.endpoints import sandbox_server_connection
from tenants import credentials
from tenants.models import TenantResource
from tests.tenants.conftest import drop_tenant_databases, make_tenant
from tests.tenants.test_app_environment import function_env, onboard, register

pytestmark = pytest.mark.usefixtures("seeded", "rot_dbs", "fast_budget")

DSN = (
    "host={db_host} port={db_port} user={db_user} password={db_password} dbname={db_name} "
    "sslmode=disable"
)


@pytest.fixture
def rot_dbs():
    drop_tenant_databases("tenant_rot")
    yield
    drop_tenant_databases("tenant_rot")


def _dsn_release(version: str):
    return register(
        version,
        app_settings={
            "environment": {"DATABASE_DSN": DSN, "DB_SECRET_ARN": None},
            "password_in_environment": True,
        },
    )


def _db_secret(slug: str) -> dict:
    return secrets.get_secret_json(secret_id=f"opsconsole/tenants/{slug}/db")


def _connects(secret: dict) -> bool:
    """Whether the tenant's role takes this password. The test server trusts 127.0.0.1,
    so the password is checked against the role's SCRAM verifier, as the server would."""
    with sandbox_server_connection() as conn:
        row = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", [secret["username"]]
        ).fetchone()
    method, iterations_salt, keys = row[0].split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac(
        "sha256", secret["password"].encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return (
        method == "SCRAM-SHA-256"
        and base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key
    )


def _run(job: Job, *, rounds: int = 20) -> Job:
    for _ in range(rounds):
        job_execute(job.pk, owner="test-worker")
        job.refresh_from_db()
        if job.is_finished:
            return job
        Job.objects.filter(pk=job.pk).update(run_after=None)
    raise AssertionError(f"{job.kind} still {job.status}")


def test_rotation_gives_the_database_and_the_function_the_new_password():
    tenant = onboard("rot-a", _dsn_release("rot-1").version)
    before = _db_secret(tenant.slug)
    assert _connects(before)

    job = _run(credentials.rotate_password(tenant))
    assert job.status == "succeeded", job.error

    after = _db_secret(tenant.slug)
    assert after["password"] != before["password"]
    assert _connects(after) and not _connects(before)
    assert f"password={after['password']} " in function_env(tenant.slug)["DATABASE_DSN"]
    # The secret's labels as a rotation leaves them, and the console knows the version.
    stages = secrets.describe_secret(secret_id=f"opsconsole/tenants/{tenant.slug}/db")[
        "VersionIdsToStages"
    ]
    token = credentials.rotation_token(job)
    assert stages[token] == ["AWSCURRENT"]
    assert ["AWSPREVIOUS"] in stages.values()
    record = TenantResource.objects.get(tenant=tenant, kind="db_secret")
    assert record.details["version_id"] == token
    # Neither password is anywhere in the console's database.
    outputs = repr([(s.output, s.detail) for s in job.steps.all()]) + repr(record.details)
    assert after["password"] not in outputs and before["password"] not in outputs


def test_a_failed_database_step_leaves_readers_on_the_working_password(monkeypatch):
    tenant = onboard("rot-b", _dsn_release("rot-2").version)
    before = _db_secret(tenant.slug)

    def refuses(*args, **kwargs):
        raise RuntimeError("the shared instance refused ALTER ROLE")

    monkeypatch.setattr(credentials, "ensure_login_role", refuses)
    job = _run(credentials.rotate_password(tenant))
    assert job.status == "failed"
    assert "refused ALTER ROLE" in job.error
    # The new password stayed AWSPENDING: every reader still gets one that works.
    assert _db_secret(tenant.slug) == before and _connects(before)
    assert f"password={before['password']} " in function_env(tenant.slug)["DATABASE_DSN"]


def test_a_retried_stage_step_stages_one_version():
    tenant = onboard("rot-c", _dsn_release("rot-3").version)
    job = credentials.rotate_password(tenant)
    step = job.steps.get(name="stage")
    first = credentials.step_stage(job, step)
    again = credentials.step_stage(job, step)
    assert again["pending_version"] == first["pending_version"]
    stages = secrets.describe_secret(secret_id=f"opsconsole/tenants/{tenant.slug}/db")[
        "VersionIdsToStages"
    ]
    assert sum("AWSPENDING" in labels for labels in stages.values()) == 1


def test_a_tenant_without_a_database_has_no_password_to_rotate():
    tenant = make_tenant("rot-none", isolation="none")
    with pytest.raises(credentials.RotationRefused, match="brings its own database"):
        credentials.rotate_password(tenant)


def test_a_secret_changed_outside_is_noticed_once_and_reconciled():
    tenant = onboard("rot-d", _dsn_release("rot-4").version)
    other = onboard("rot-e", _dsn_release("rot-5").version)
    assert credentials.secrets_watch() == []

    # Someone rotates by hand: a new password in the secret, the database told too.
    db = _db_secret(tenant.slug)
    changed = {**db, "password": "0utside-rotated-pass"}
    secrets.put_secret_json(secret_id=f"opsconsole/tenants/{tenant.slug}/db", value=changed)
    assert credentials.secrets_watch() == [tenant.slug]
    job = Job.objects.get(kind="tenant_reconcile", subject_id=tenant.slug)
    assert job.params["reason"] == "a secret changed outside the console"
    assert not Job.objects.filter(kind="tenant_reconcile", subject_id=other.slug).exists()

    job = _run(job)
    assert job.status == "succeeded", job.error
    assert "password=0utside-rotated-pass " in function_env(tenant.slug)["DATABASE_DSN"]
    assert _connects(changed)
    assert credentials.secrets_watch() == []


def test_the_watch_lists_secrets_a_hundred_at_a_time():
    """One ListSecrets call per 100 secrets, not one call per tenant."""
    sm = client("secretsmanager")
    for n in range(120):
        sm.create_secret(Name=f"opsconsole/tenants/rot-many-{n}/db", SecretString="{}")
    calls = []

    def counted(params, **kwargs):
        calls.append(params)

    sm.meta.events.register("before-call.secrets-manager.ListSecrets", counted)
    try:
        found = secrets.current_versions(name_prefix="opsconsole/tenants/rot-many-")
    finally:
        sm.meta.events.unregister("before-call.secrets-manager.ListSecrets", counted)
    assert len(found) == 120 and all(found.values())
    assert len(calls) == 2

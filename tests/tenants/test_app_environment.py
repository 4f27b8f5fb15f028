"""What the function sees: the release's environment templates rendered per tenant, the
password only by choice, Lambda's reserved names refused and nothing else, and the
release's memory, timeout and architecture applied (on a deployment too)."""

from __future__ import annotations

import pytest

from deployments.models import Release
from deployments.releases import ReleaseInput, ReleaseRefused, release_register
from deployments.rollouts import Strategy, Target, rollout_start
from opsconsole.aws import secrets
from opsconsole.aws.clients import client
from opsconsole.sandbox.demo_release import DEMO_VERSION, app_files, build_zip
from tenants import drift
from tenants.forms import parse_pairs
from tests.deployments.test_rollout import drive
from tests.tenants.conftest import drop_tenant_databases, make_tenant, run_job

pytestmark = pytest.mark.usefixtures("seeded", "le_dbs", "fast_budget")


@pytest.fixture
def le_dbs():
    drop_tenant_databases("tenant_le")
    yield
    drop_tenant_databases("tenant_le")


def register(version: str, **changes) -> Release:
    demo = Release.objects.get(version=DEMO_VERSION)
    fields = {
        "version": version,
        "artifact": "zip",
        "zip_bytes": build_zip(app_files(version)),
        "runtime": "python3.12",
        "handler": "app.handler",
        "migration_files": [(m.name, m.sql) for m in demo.migrations.all()],
        **changes,
    }
    return release_register(ReleaseInput(**fields))


def function_env(slug: str) -> dict[str, str]:
    config = client("lambda").get_function_configuration(FunctionName=f"opsconsole-{slug}")
    return config["Environment"]["Variables"]


def onboard(slug: str, version: str, **spec):
    tenant = make_tenant(slug, desired_release=version, **spec)
    job = run_job("tenant_provision", tenant)
    assert job.status == "succeeded", job.error
    tenant.refresh_from_db()
    return tenant


def test_the_default_environment_names_the_database_without_its_password():
    release = register("le-1")
    tenant = onboard("le-default", release.version)
    env = function_env(tenant.slug)
    db = secrets.get_secret_json(secret_id=f"opsconsole/tenants/{tenant.slug}/db")
    assert env["DB_HOST"] == db["host"]
    assert env["DB_PORT"] == str(db["port"])
    assert env["DB_NAME"] == db["dbname"] == "tenant_le_default"
    assert env["DB_USER"] == db["username"]
    assert env["DB_SSLMODE"] == "require"
    assert env["DB_SECRET_ARN"].startswith("arn:aws:secretsmanager:")
    assert env["TENANT_SLUG"] == tenant.slug
    assert db["password"] not in env.values()
    assert "DB_PASSWORD" not in env


def test_a_dsn_with_the_password_only_by_choice_and_drift_never_shows_it():
    dsn = "host={db_host} port={db_port} user={db_user} password={db_password} dbname={db_name}"
    with pytest.raises(ReleaseRefused) as refused:
        register("le-2", app_settings={"environment": {"DATABASE_DSN": dsn}})
    assert "app_settings.environment.DATABASE_DSN holds the database password" in str(refused.value)
    release = register(
        "le-3",
        app_settings={
            "environment": {"DATABASE_DSN": dsn + " sslmode=require", "DB_SECRET_ARN": None},
            "password_in_environment": True,
        },
    )
    tenant = onboard("le-dsn", release.version)
    env = function_env(tenant.slug)
    db = secrets.get_secret_json(secret_id=f"opsconsole/tenants/{tenant.slug}/db")
    assert env["DATABASE_DSN"] == (
        f"host={db['host']} port={db['port']} user={db['username']} "
        f"password={db['password']} dbname={db['dbname']} sslmode=require"
    )
    assert "DB_SECRET_ARN" not in env  # left out by the release (null)

    # The password changes (rotated by hand): drift says so without showing either value,
    # and a repair puts the new one in.
    secrets.put_secret_json(
        secret_id=f"opsconsole/tenants/{tenant.slug}/db", value={**db, "password": "n3w-pass"}
    )
    found = drift.tenant_drift(tenant)
    env_drift = [d for d in found if d.field == "env DATABASE_DSN"]
    assert env_drift and env_drift[0].expected == "(secret)" and env_drift[0].actual == "differs"
    assert "n3w-pass" not in repr(found) and db["password"] not in repr(found)
    job = run_job("tenant_reconcile", tenant)
    assert job.status == "succeeded", job.error
    assert "password=n3w-pass " in function_env(tenant.slug)["DATABASE_DSN"]
    assert "n3w-pass" not in repr([s.output for s in job.steps.all()])


def test_secret_variables_as_plain_variables_by_choice():
    release = register("le-4", app_settings={"secrets_in_environment": True})
    tenant = make_tenant(
        "le-plain", desired_release=release.version, secret_env_names=["JWT_SECRET"]
    )
    from tenants.provisioning.env_secret import write_env_secret

    write_env_secret(tenant, set_values={"JWT_SECRET": "s3cr3t"}, remove=[])
    job = run_job("tenant_provision", tenant)
    assert job.status == "succeeded", job.error
    env = function_env(tenant.slug)
    assert env["JWT_SECRET"] == "s3cr3t"
    assert "ENV_SECRET_ARN" not in env


def test_only_lambdas_reserved_names_are_refused_and_say_why():
    assert parse_pairs("AWS_BUCKET=b\nAWS_REGION_NAME=us-east-1", field="env") == {
        "AWS_BUCKET": "b",
        "AWS_REGION_NAME": "us-east-1",
    }
    from django import forms

    with pytest.raises(forms.ValidationError) as refused:
        parse_pairs("AWS_REGION=us-east-1", field="env")
    assert "Lambda sets it itself" in str(refused.value)


def test_release_settings_applied_and_a_tenant_overrides_them():
    release = register("le-5", memory_mb=1024, timeout_s=60, architecture="arm64")
    follows = onboard("le-follow", release.version)
    own = onboard("le-own", release.version, lambda_memory_mb=512)
    lam = client("lambda")
    follow_config = lam.get_function_configuration(FunctionName=f"opsconsole-{follows.slug}")
    assert (follow_config["MemorySize"], follow_config["Timeout"]) == (1024, 60)
    assert follow_config["Architectures"] == ["arm64"]
    own_config = lam.get_function_configuration(FunctionName=f"opsconsole-{own.slug}")
    assert (own_config["MemorySize"], own_config["Timeout"]) == (512, 60)


def test_a_deployment_applies_the_new_releases_architecture_and_memory():
    first = register("le-6")
    tenant = onboard("le-arch", first.version)
    assert client("lambda").get_function_configuration(FunctionName="opsconsole-le-arch")[
        "Architectures"
    ] == ["x86_64"]
    second = register("le-7", architecture="arm64", memory_mb=768)
    rollout = drive(
        rollout_start(
            release=second,
            target=Target(kind="tenants", values=[tenant.slug]),
            strategy=Strategy(max_parallel=10, bake_s=0),
        )
    )
    assert rollout.status == "succeeded", rollout.status_reason
    config = client("lambda").get_function_configuration(FunctionName="opsconsole-le-arch")
    assert config["Architectures"] == ["arm64"]
    assert config["MemorySize"] == 768
    live = client("lambda").get_function_configuration(
        FunctionName="opsconsole-le-arch", Qualifier="live"
    )
    assert live["Architectures"] == ["arm64"]

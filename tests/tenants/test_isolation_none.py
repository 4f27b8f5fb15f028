"""A tenant whose app brings its own database (isolation none), its function outside the
VPC: onboarding, a rollout, drift and offboarding against in-process moto."""

from __future__ import annotations

import pytest

from deployments.models import DeploymentStatus, RolloutStatus
from deployments.rollouts import Target, rollout_start
from opsconsole.aws.clients import client
from opsconsole.jobs.models import Job, JobStatus
from tenants import resources
from tenants.health.metrics import missing_resources
from tenants.models import Attachment, Isolation, Tenant, TenantResource
from tenants.provisioning.identity import POLICY_NAME
from tenants.provisioning.network import network_problems
from tests.deployments.test_rollout import NEW, drive, quick, register_new
from tests.tenants.conftest import drop_tenant_databases, make_tenant, run_job

pytestmark = pytest.mark.usefixtures("seeded", "hb_dbs", "fast_budget")

OWN_DB = "postgres://app@team-db.example.com:5432/app"


@pytest.fixture
def hb_dbs():
    drop_tenant_databases("tenant_hb")
    yield
    drop_tenant_databases("tenant_hb")


def own_db_tenant(slug: str = "hb-own", **spec) -> Tenant:
    spec = {"isolation": Isolation.NONE, "function_in_vpc": False, **spec}
    spec.setdefault("env_vars", {"DATABASE_URL": OWN_DB})
    return make_tenant(slug, **spec)


def outputs(job: Job) -> dict[str, dict]:
    return {s.name: s.output for s in job.steps.all()}


def function_config(slug: str) -> dict:
    return client("lambda").get_function(FunctionName=f"opsconsole-{slug}")["Configuration"]


def assert_no_database(slug: str) -> None:
    """Nothing of a console database exists for the tenant, in AWS or on PostgreSQL."""
    from tests.tenants.conftest import _admin_conn

    instances = client("rds").describe_db_instances()["DBInstances"]
    assert [i for i in instances if slug in i["DBInstanceIdentifier"]] == []
    clusters = client("rds").describe_db_clusters()["DBClusters"]
    assert [c for c in clusters if slug in c["DBClusterIdentifier"]] == []
    secrets = [s["Name"] for s in client("secretsmanager").list_secrets()["SecretList"]]
    assert f"opsconsole/tenants/{slug}/db" not in secrets
    with _admin_conn() as conn:
        name = f"tenant_{slug.replace('-', '_')}"
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchall() == []
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchall() == []


def test_onboarding_creates_no_database_and_keeps_the_function_out_of_the_vpc(seeded):
    tenant = own_db_tenant()
    job = run_job("tenant_provision", tenant)
    assert job.status == JobStatus.SUCCEEDED, [(s.name, s.error) for s in job.steps.all()]
    out = outputs(job)
    assert out["database"] == {"database": "none: the app brings its own database"}
    assert out["secret"] == {"secret": "none: the app brings its own database"}
    assert out["schema"] == {"schema": "no database of the console's: skipped"}
    assert out["network"]["function_in_vpc"] is False
    assert_no_database("hb-own")

    config = function_config("hb-own")
    assert (config.get("VpcConfig") or {}).get("SubnetIds", []) == []
    assert (config.get("VpcConfig") or {}).get("SecurityGroupIds", []) == []
    env = config["Environment"]["Variables"]
    # Every default variable about the console's database is left out, DB_SSLMODE too.
    assert [k for k in env if k.startswith("DB_")] == []
    assert env["DATABASE_URL"] == OWN_DB and env["TENANT_SLUG"] == "hb-own"

    # The role: no database secret to read, no network interfaces to manage.
    document = client("iam").get_role_policy(RoleName="opsconsole-hb-own", PolicyName=POLICY_NAME)
    sids = [s["Sid"] for s in document["PolicyDocument"]["Statement"]]
    assert sids == ["WriteOwnLogs"]
    kinds = set(TenantResource.objects.filter(tenant=tenant).values_list("kind", flat=True))
    assert not kinds & {"database", "db_secret", "db_instance", "db_cluster", "db_proxy"}
    assert resources.find(tenant, kind="network").name == "outside-vpc"

    # No alarm on a database (the shared instance is not the tenant's).
    alarms = client("cloudwatch").describe_alarms(AlarmNamePrefix="opsconsole-hb-own-")
    assert alarms["MetricAlarms"]
    assert [a["AlarmName"] for a in alarms["MetricAlarms"] if a["Namespace"] == "AWS/RDS"] == []

    # Health expects no database of it.
    tenant.refresh_from_db()
    assert missing_resources(tenant, list(tenant.resources.all())) == []

    # Running it again changes nothing and still makes no database.
    assert run_job("tenant_reconcile", tenant).status == JobStatus.SUCCEEDED
    assert_no_database("hb-own")


def test_drift_reports_no_missing_database_and_sees_a_function_moved_into_the_vpc(seeded):
    tenant = own_db_tenant("hb-drift")
    assert run_job("tenant_provision", tenant).status == JobStatus.SUCCEEDED
    clean = outputs(run_job("tenant_drift_check", tenant))["compare"]
    assert clean["in_sync"] is True, clean["drift"]

    # Someone puts the function into the VPC by hand: drift names it, repair undoes it.
    client("lambda").update_function_configuration(
        FunctionName="opsconsole-hb-drift",
        VpcConfig={"SubnetIds": seeded["subnet_ids"][:1], "SecurityGroupIds": []},
    )
    found = outputs(run_job("tenant_drift_check", tenant))["compare"]["drift"]
    assert [(d["kind"], d["field"]) for d in found] == [("function", "VpcConfig")]
    assert run_job("tenant_reconcile", tenant).status == JobStatus.SUCCEEDED
    assert (function_config("hb-drift").get("VpcConfig") or {}).get("SubnetIds", []) == []


def test_a_rollout_skips_the_schema_step(seeded):
    tenant = own_db_tenant("hb-roll", ring=0)
    assert run_job("tenant_provision", tenant).status == JobStatus.SUCCEEDED
    release = register_new()
    rollout = drive(rollout_start(release=release, target=Target(), strategy=quick()))
    assert rollout.status == RolloutStatus.SUCCEEDED, rollout.status_reason
    [deployment] = rollout.deployments.all()
    assert deployment.status == DeploymentStatus.SUCCEEDED
    steps = {s.name: s for s in deployment.job.steps.all()}
    assert steps["schema"].output == {"schema": "no database of the console's: skipped"}
    tenant.refresh_from_db()
    assert tenant.current_release == NEW
    env = function_config("hb-roll")["Environment"]["Variables"]
    assert [k for k in env if k.startswith("DB_")] == []
    assert_no_database("hb-roll")


def test_offboarding_skips_the_database_and_its_backup(seeded):
    tenant = own_db_tenant("hb-bye", secret_env_names=["API_KEY"])
    assert run_job("tenant_provision", tenant).status == JobStatus.SUCCEEDED
    Tenant.objects.filter(pk=tenant.pk).update(status="offboarding")
    job = run_job("tenant_offboard", tenant)
    assert job.status == JobStatus.SUCCEEDED, [(s.name, s.error) for s in job.steps.all()]
    out = outputs(job)
    assert out["final_backup"] == {"backup": "skipped (none: the app brings its own database)"}
    assert out["database"]["deleted"] == []
    assert not TenantResource.objects.filter(tenant=tenant, kind__in=["dump", "snapshot"]).exists()
    functions = [f["FunctionName"] for f in client("lambda").list_functions()["Functions"]]
    assert "opsconsole-hb-bye" not in functions
    # The env secret (the tenant's own variables) is still scheduled for deletion.
    env = client("secretsmanager").describe_secret(SecretId="opsconsole/tenants/hb-bye/env")
    assert "DeletedDate" in env
    assert_no_database("hb-bye")


def test_outside_the_vpc_only_without_a_database_and_attachments(db):
    inside = Tenant(slug="hb-n1", region="us-east-1", isolation=Isolation.SHARED)
    assert network_problems(inside) == []
    shared_outside = Tenant(
        slug="hb-n2", region="us-east-1", isolation=Isolation.SHARED, function_in_vpc=False
    )
    [problem] = network_problems(shared_outside)
    assert "cannot reach the tenant's database" in problem
    own = own_db_tenant("hb-n3")
    assert network_problems(own) == []
    Attachment.objects.create(
        tenant=own, name="redis", host="redis.internal", port=6379, security_group_id="sg-1"
    )
    [problem] = network_problems(own)
    assert "attachments (redis)" in problem


def test_the_network_step_refuses_a_database_tenant_outside_the_vpc(seeded):
    tenant = make_tenant("hb-bad", isolation=Isolation.SHARED, function_in_vpc=False)
    job = run_job("tenant_provision", tenant)
    assert job.status == JobStatus.FAILED
    assert "cannot reach the tenant's database" in job.error
    assert_no_database("hb-bad")

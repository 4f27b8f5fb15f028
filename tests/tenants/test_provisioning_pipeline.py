"""The whole onboarding pipeline against in-process moto and real tenant databases."""

from __future__ import annotations

import json

import psycopg
import pytest

from opsconsole.aws.clients import client
from opsconsole.jobs.models import JobStatus, StepStatus
from tenants.models import Tenant, TenantResource
from tests.local_postgres import seed_in_process
from tests.tenants.conftest import make_tenant, run_job

pytestmark = pytest.mark.usefixtures("seeded", "tenant_dbs")


def _aws_state(slug: str) -> dict:
    """Everything AWS holds for a tenant, in a comparable form."""
    name = f"opsconsole-{slug}"
    lam = client("lambda")
    apis = [a for a in client("apigatewayv2").get_apis()["Items"] if a["Name"] == name]
    return {
        "functions": [
            f["FunctionName"]
            for f in lam.list_functions()["Functions"]
            if f["FunctionName"] == name
        ],
        "versions": [
            v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]
        ],
        "alias": lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"],
        "apis": [a["ApiId"] for a in apis],
        "integrations": [
            (i["IntegrationUri"], i["PayloadFormatVersion"])
            for a in apis
            for i in client("apigatewayv2").get_integrations(ApiId=a["ApiId"])["Items"]
        ],
        "routes": [
            r["RouteKey"]
            for a in apis
            for r in client("apigatewayv2").get_routes(ApiId=a["ApiId"])["Items"]
        ],
        "alarms": sorted(
            a["AlarmName"]
            for a in client("cloudwatch").describe_alarms(AlarmNamePrefix=name)["MetricAlarms"]
        ),
        "roles": [
            r["RoleName"] for r in client("iam").list_roles()["Roles"] if r["RoleName"] == name
        ],
        "secrets": sorted(
            s["Name"]
            for s in client("secretsmanager").list_secrets()["SecretList"]
            if f"/tenants/{slug}/" in s["Name"]
        ),
        "log_groups": [
            g["logGroupName"]
            for g in client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")[
                "logGroups"
            ]
        ],
    }


def _tenant_db_tables(tenant: Tenant) -> set[str]:
    from opsconsole.aws import secrets

    secret = secrets.get_secret_json(secret_id=f"opsconsole/tenants/{tenant.slug}/db")
    with psycopg.connect(
        host=secret["host"],
        port=int(secret["port"]),
        dbname=secret["dbname"],
        user=secret["username"],
        password=secret["password"],
    ) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_onboarding_brings_a_shared_tenant_up(seeded):
    tenant = make_tenant("t9-acme", env_vars={"LOG_LEVEL": "info"})
    job = run_job("tenant_provision", tenant)
    steps = {s.name: s for s in job.steps.all()}
    assert job.status == JobStatus.SUCCEEDED, [(s.name, s.error) for s in steps.values()]
    assert all(s.status == StepStatus.SUCCEEDED for s in steps.values())
    tenant.refresh_from_db()
    assert tenant.status == "active"
    assert tenant.current_release == seeded["release_version"]
    assert tenant.endpoint_url.startswith("https://") or "execute-api" in tenant.endpoint_url

    state = _aws_state("t9-acme")
    assert state["functions"] == ["opsconsole-t9-acme"] and state["roles"] == ["opsconsole-t9-acme"]
    assert state["alias"] == "1"
    assert state["routes"] == ["$default"]
    [(uri, payload)] = state["integrations"]
    assert uri.endswith(":function:opsconsole-t9-acme:live") and payload == "2.0"
    assert len(state["alarms"]) == 5
    assert state["log_groups"] == ["/aws/lambda/opsconsole-t9-acme"]

    config = client("lambda").get_function(FunctionName="opsconsole-t9-acme")["Configuration"]
    env = config["Environment"]["Variables"]
    assert env["LOG_LEVEL"] == "info" and env["TENANT_SLUG"] == "t9-acme"
    assert env["DB_SECRET_ARN"].startswith("arn:aws:secretsmanager:")
    assert "password" not in json.dumps(env).lower()
    assert sorted(config["VpcConfig"]["SubnetIds"]) == sorted(seeded["subnet_ids"])

    # The release's first migration really ran in the tenant's own database.
    assert "opsconsole_schema_history" in _tenant_db_tables(tenant)
    assert {r.kind for r in TenantResource.objects.filter(tenant=tenant)} >= {
        "network",
        "database",
        "db_secret",
        "role",
        "log_group",
        "function",
        "alias",
        "api",
        "alarm",
    }


def test_running_the_pipeline_again_changes_nothing():
    tenant = make_tenant("t9-twice")
    assert run_job("tenant_provision", tenant).status == JobStatus.SUCCEEDED
    before = _aws_state("t9-twice")
    again = run_job("tenant_reconcile", tenant)
    assert again.status == JobStatus.SUCCEEDED
    assert _aws_state("t9-twice") == before  # no new version, API, alarm or secret


def test_lost_records_are_adopted_not_duplicated():
    """A crash after the AWS calls but before the records were saved."""
    tenant = make_tenant("t9-crash")
    assert run_job("tenant_provision", tenant).status == JobStatus.SUCCEEDED
    before = _aws_state("t9-crash")
    TenantResource.objects.filter(tenant=tenant).delete()
    assert run_job("tenant_reconcile", tenant).status == JobStatus.SUCCEEDED
    assert _aws_state("t9-crash") == before
    assert TenantResource.objects.filter(tenant=tenant, kind="api").count() == 1


def test_role_policy_names_only_the_tenants_own_secret_and_log_group():
    a, b = make_tenant("t9-alpha"), make_tenant("t9-bravo")
    assert run_job("tenant_provision", a).status == JobStatus.SUCCEEDED
    assert run_job("tenant_provision", b).status == JobStatus.SUCCEEDED
    iam = client("iam")
    doc = iam.get_role_policy(RoleName="opsconsole-t9-alpha", PolicyName="opsconsole-tenant")[
        "PolicyDocument"
    ]
    text = json.dumps(doc)
    assert "t9-alpha" in text and "t9-bravo" not in text
    statements = {s["Sid"]: s for s in doc["Statement"]}
    a_secret = TenantResource.objects.get(tenant=a, kind="db_secret").arn
    assert statements["ReadOwnSecrets"]["Resource"] == [a_secret]
    assert all(
        "/aws/lambda/opsconsole-t9-alpha" in r for r in statements["WriteOwnLogs"]["Resource"]
    )
    assert not iam.list_attached_role_policies(RoleName="opsconsole-t9-alpha")["AttachedPolicies"]
    for statement in doc["Statement"]:
        assert statement["Resource"] != "*" or statement["Action"] == [
            "ec2:DescribeNetworkInterfaces"
        ]


def test_drift_is_shown_and_repaired():
    tenant = make_tenant("t9-drift")
    assert run_job("tenant_provision", tenant).status == JobStatus.SUCCEEDED
    clean = run_job("tenant_drift_check", tenant)
    assert clean.steps.get().output == {"in_sync": True, "drift": []}

    client("lambda").update_function_configuration(
        FunctionName="opsconsole-t9-drift", MemorySize=1024
    )
    client("cloudwatch").delete_alarms(AlarmNames=["opsconsole-t9-drift-throttles"])
    found = run_job("tenant_drift_check", tenant).steps.get().output
    assert found["in_sync"] is False
    fields = {(d["kind"], d["field"]) for d in found["drift"]}
    assert ("function", "MemorySize") in fields and ("alarm", "exists") in fields

    assert run_job("tenant_reconcile", tenant).status == JobStatus.SUCCEEDED
    assert run_job("tenant_drift_check", tenant).steps.get().output["in_sync"] is True


def test_suspend_and_resume_set_reserved_concurrency():
    tenant = make_tenant("t9-pause", reserved_concurrency=5)
    assert run_job("tenant_provision", tenant).status == JobStatus.SUCCEEDED
    lam = client("lambda")
    assert (
        lam.get_function_concurrency(FunctionName="opsconsole-t9-pause")[
            "ReservedConcurrentExecutions"
        ]
        == 5
    )
    Tenant.objects.filter(pk=tenant.pk).update(status="suspended")
    assert run_job("tenant_suspend", tenant).status == JobStatus.SUCCEEDED
    assert (
        lam.get_function_concurrency(FunctionName="opsconsole-t9-pause")[
            "ReservedConcurrentExecutions"
        ]
        == 0
    )
    Tenant.objects.filter(pk=tenant.pk).update(status="active")
    assert run_job("tenant_resume", tenant).status == JobStatus.SUCCEEDED
    assert (
        lam.get_function_concurrency(FunctionName="opsconsole-t9-pause")[
            "ReservedConcurrentExecutions"
        ]
        == 5
    )


def test_sandbox_restart_is_repaired_by_reconcile(seeded):
    from moto.core.base_backend import BackendDict

    from opsconsole.aws.clients import reset_clients

    tenant = make_tenant("t9-phoenix")
    assert run_job("tenant_provision", tenant).status == JobStatus.SUCCEEDED
    BackendDict.reset()  # what a moto server restart does
    reset_clients()
    seed_in_process()
    job = run_job("tenant_reconcile", tenant)
    assert job.status == JobStatus.SUCCEEDED, job.error
    state = _aws_state("t9-phoenix")
    assert state["functions"] == ["opsconsole-t9-phoenix"] and len(state["alarms"]) == 5
    # The database survived in the local PostgreSQL, with its schema.
    assert "opsconsole_schema_history" in _tenant_db_tables(tenant)


def test_offboarding_backs_up_first_then_removes_the_stack(seeded):
    tenant = make_tenant("t9-bye")
    assert run_job("tenant_provision", tenant).status == JobStatus.SUCCEEDED
    Tenant.objects.filter(pk=tenant.pk).update(status="offboarding")
    job = run_job("tenant_offboard", tenant)
    assert job.status == JobStatus.SUCCEEDED, [(s.name, s.error) for s in job.steps.all()]
    tenant.refresh_from_db()
    assert tenant.status == "offboarded"
    dump = TenantResource.objects.get(tenant=tenant, kind="dump")
    head = client("s3").head_object(Bucket=seeded["bucket"], Key=dump.identifier)
    assert head["ContentLength"] > 0
    state_functions = [f["FunctionName"] for f in client("lambda").list_functions()["Functions"]]
    assert "opsconsole-t9-bye" not in state_functions
    assert not [
        a for a in client("apigatewayv2").get_apis()["Items"] if a["Name"] == "opsconsole-t9-bye"
    ]
    secret = client("secretsmanager").describe_secret(SecretId="opsconsole/tenants/t9-bye/db")
    assert "DeletedDate" in secret  # scheduled, with a recovery window


def test_daily_drift_check_queues_one_job_per_live_tenant():
    from opsconsole.jobs.models import Job
    from tenants.services import tenants_check_drift_all

    make_tenant("t9-live", status="active")
    make_tenant("t9-paused", status="suspended")
    make_tenant("t9-gone", status="offboarded")
    assert tenants_check_drift_all() == 2
    assert tenants_check_drift_all() == 2  # still queued: not doubled
    jobs = Job.objects.filter(kind="tenant_drift_check")
    assert sorted(jobs.values_list("subject_id", flat=True)) == ["t9-live", "t9-paused"]

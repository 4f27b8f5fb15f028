"""The tenant role's policy: the console's least-privilege statements plus what the release
declares (permissions, SSM parameters), rendered per tenant and checked before AWS."""

from __future__ import annotations

import pytest

from deployments.releases import ReleaseInput, release_register
from opsconsole.aws.clients import client
from opsconsole.jobs.models import JobStatus
from opsconsole.sandbox.demo_release import app_files, build_zip
from tenants import resources
from tenants.app_settings import AppSettings, parse_app_settings
from tenants.models import Isolation, Tenant
from tenants.provisioning import identity
from tenants.provisioning.identity import (
    POLICY_NAME,
    permission_problems,
    permissions_plan,
    statement_drift,
)
from tests.tenants.conftest import drop_tenant_databases, make_tenant, run_job

pytestmark = pytest.mark.usefixtures("seeded", "hb_dbs")

VERSION = "2026.12.1-perm"
APP = {
    "secrets_in_environment": True,
    "permissions": [
        {
            "Sid": "Uploads",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": "arn:aws:s3:::team-uploads/{tenant}/*",
        },
        {"Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:{region}:{account}:jobs-{tenant}"},
    ],
    "ssm_variables": {"STRIPE_KEY": "/apps/{tenant}/stripe-key", "SENTRY_DSN": "/shared/sentry"},
}


@pytest.fixture
def hb_dbs():
    drop_tenant_databases("tenant_hb")
    yield
    drop_tenant_databases("tenant_hb")


def register(version: str = VERSION, app: dict = APP) -> str:
    release_register(
        ReleaseInput(
            version=version,
            artifact="zip",
            zip_bytes=build_zip(app_files(version)),
            runtime="python3.12",
            handler="app.handler",
            app_settings=app,
        )
    )
    return version


def put_parameters(slug: str) -> None:
    ssm = client("ssm")
    ssm.put_parameter(Name=f"/apps/{slug}/stripe-key", Value=f"sk-{slug}", Type="SecureString")
    ssm.put_parameter(
        Name="/shared/sentry", Value="https://dsn.example", Type="SecureString", Overwrite=True
    )


def account() -> str:
    return client("sts").get_caller_identity()["Account"]


def role_policy(slug: str) -> dict:
    resp = client("iam").get_role_policy(RoleName=f"opsconsole-{slug}", PolicyName=POLICY_NAME)
    return resp["PolicyDocument"]


def declared(slug: str, acct: str) -> list[dict]:
    """What APP adds, written out by hand for ``slug``."""
    return [
        {
            "Sid": "AppUploads",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": [f"arn:aws:s3:::team-uploads/{slug}/*"],
        },
        {
            "Sid": "AppStmt2",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": [f"arn:aws:sqs:us-east-1:{acct}:jobs-{slug}"],
        },
        {
            "Sid": "ReadOwnParameters",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter", "ssm:GetParameters"],
            "Resource": [
                f"arn:aws:ssm:us-east-1:{acct}:parameter/apps/{slug}/stripe-key",
                f"arn:aws:ssm:us-east-1:{acct}:parameter/shared/sentry",
            ],
        },
    ]


def test_the_policy_is_the_consoles_plus_the_declared_rendered_per_tenant(seeded):
    register()
    put_parameters("hb-acme")
    put_parameters("hb-beta")
    acme = make_tenant("hb-acme", desired_release=VERSION)  # shared database, in the VPC
    beta = make_tenant(
        "hb-beta", desired_release=VERSION, isolation=Isolation.NONE, function_in_vpc=False
    )
    for tenant in (acme, beta):
        job = run_job("tenant_provision", tenant)
        assert job.status == JobStatus.SUCCEEDED, [(s.name, s.error) for s in job.steps.all()]
    acct = account()

    db_secret = resources.find(acme, kind="db_secret").arn
    acme_policy = role_policy("hb-acme")
    console = acme_policy["Statement"][:4]
    assert [s["Sid"] for s in console] == [
        "ReadOwnSecrets",
        "WriteOwnLogs",
        "DescribeNetworkInterfaces",
        "VpcAccessInTenantSubnets",
    ]
    assert console[0]["Resource"] == [db_secret]
    log_group = f"arn:aws:logs:us-east-1:{acct}:log-group:/aws/lambda/opsconsole-hb-acme"
    assert console[1]["Resource"] == [f"{log_group}:*", f"{log_group}:log-stream:*"]
    ec2_arn = f"arn:aws:ec2:us-east-1:{acct}"
    assert sorted(console[3]["Resource"]) == sorted(
        [
            f"{ec2_arn}:network-interface/*",
            *(f"{ec2_arn}:subnet/{s}" for s in seeded["subnet_ids"]),
            f"{ec2_arn}:security-group/{seeded['function_sg_id']}",
        ]
    )
    assert acme_policy["Statement"][4:] == declared("hb-acme", acct)

    # The other tenant: its own names in every declared resource; no database secret and
    # no network statements (isolation none, outside the VPC).
    beta_policy = role_policy("hb-beta")
    assert [s["Sid"] for s in beta_policy["Statement"][:1]] == ["WriteOwnLogs"]
    assert beta_policy["Statement"][1:] == declared("hb-beta", acct)
    assert "hb-acme" not in str(beta_policy) and "hb-beta" not in str(acme_policy)

    # The SSM values reach the function (and only its own tenant's).
    for slug in ("hb-acme", "hb-beta"):
        env = client("lambda").get_function(FunctionName=f"opsconsole-{slug}")["Configuration"][
            "Environment"
        ]["Variables"]
        assert env["STRIPE_KEY"] == f"sk-{slug}" and env["SENTRY_DSN"] == "https://dsn.example"

    lines = permissions_plan(beta, parse_app_settings(APP))
    assert "s3:GetObject on arn:aws:s3:::team-uploads/hb-beta/*" in lines
    assert (
        "ssm:GetParameter on arn:aws:ssm:us-east-1:{account}:parameter/apps/hb-beta/stripe-key"
        in lines
    )
    assert len(lines) == 2 + 1 + 2 * 2


def test_drift_masks_ssm_values_and_names_the_statement_that_differs():
    register()
    put_parameters("hb-drift")
    tenant = make_tenant(
        "hb-drift", desired_release=VERSION, isolation=Isolation.NONE, function_in_vpc=False
    )
    assert run_job("tenant_provision", tenant).status == JobStatus.SUCCEEDED
    clean = run_job("tenant_drift_check", tenant).steps.get().output
    assert clean["in_sync"] is True, clean["drift"]

    # The parameter is rotated, and someone widens the uploads statement by hand.
    client("ssm").put_parameter(
        Name="/apps/hb-drift/stripe-key", Value="sk-rotated", Type="SecureString", Overwrite=True
    )
    policy = role_policy("hb-drift")
    for statement in policy["Statement"]:
        if statement["Sid"] == "AppUploads":
            statement["Resource"] = ["arn:aws:s3:::team-uploads/*"]
    client("iam").put_role_policy(
        RoleName="opsconsole-hb-drift", PolicyName=POLICY_NAME, PolicyDocument=_json(policy)
    )
    found = run_job("tenant_drift_check", tenant).steps.get().output["drift"]
    by_field = {d["field"]: d for d in found}
    assert set(by_field) == {"env STRIPE_KEY", "statement AppUploads"}
    assert by_field["env STRIPE_KEY"]["expected"] == "(secret)"
    assert "sk-" not in str(found)
    assert "team-uploads/hb-drift/*" in by_field["statement AppUploads"]["expected"]
    assert "team-uploads/*" in by_field["statement AppUploads"]["actual"]

    assert run_job("tenant_reconcile", tenant).status == JobStatus.SUCCEEDED
    assert run_job("tenant_drift_check", tenant).steps.get().output["in_sync"] is True


def _json(document: dict) -> str:
    import json

    return json.dumps(document)


def test_statement_drift_says_missing_and_extra_statements():
    wanted = {"Version": "2012-10-17", "Statement": [{"Sid": "A", "Action": "x:Y"}]}
    current = {"Version": "2012-10-17", "Statement": [{"Sid": "B", "Action": "x:Y"}]}
    drifts = statement_drift("role", current, wanted)
    assert [(d.field, d.expected, d.actual) for d in drifts] == [
        ("statement A", "present", "missing"),
        ("statement B", "absent", "present"),
    ]
    assert (
        statement_drift("role", {**wanted, "Statement": [{"Sid": "A", "Action": ["x:Y"]}]}, wanted)
        == []
    )


def test_a_missing_parameter_fails_the_function_step_with_how_to_create_it():
    register()
    tenant = make_tenant(
        "hb-noparam", desired_release=VERSION, isolation=Isolation.NONE, function_in_vpc=False
    )
    job = run_job("tenant_provision", tenant)
    assert job.status == JobStatus.FAILED
    step = job.steps.get(name="function")
    assert "/apps/hb-noparam/stripe-key (for STRIPE_KEY)" in step.error
    assert "aws ssm put-parameter --type SecureString --name '/apps/hb-noparam/stripe-key'" in (
        step.error
    )
    functions = [f["FunctionName"] for f in client("lambda").list_functions()["Functions"]]
    assert "opsconsole-hb-noparam" not in functions


def app(*statements: dict, **extra) -> AppSettings:
    return parse_app_settings({"permissions": list(statements), **extra})


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        (
            {"Action": "s3:GetObject", "Resource": "arn:aws:s3:::team-uploads/*"},
            "a wildcard that does not come after {tenant}",
        ),
        (
            {"Action": "ssm:GetParameter", "Resource": "arn:aws:ssm:*:*:parameter/app/*"},
            "a wildcard that does not come after {tenant}",
        ),
        (
            {"Action": "s3:GetObject", "Resource": "arn:aws:s3:::uploads/{tenant}*"},
            "also matches other tenants",
        ),
        (
            {"Action": "s3:GetObject", "Resource": "arn:aws:s3:::uploads/{tenant}-*"},
            "also matches other tenants",
        ),
        (
            {"Action": "s3:GetObject", "Resource": "arn:aws:s3:::uploads/hb-other/x"},
            "names another tenant's resources (hb-other)",
        ),
        ({"Action": "s3:GetObject", "Resource": "*"}, "s3:GetObject on every resource (*)"),
        (
            {"Action": "iam:PutRolePolicy", "Resource": "arn:aws:iam::{account}:role/x-{tenant}"},
            "iam:PutRolePolicy is refused",
        ),
    ],
)
def test_statements_that_reach_other_tenants_are_refused(statement, problem):
    make_tenant("hb-other")
    tenant = Tenant(slug="hb-me", region="us-east-1", isolation=Isolation.NONE)
    problems = permission_problems(tenant, app(statement))
    assert len(problems) == 1 and problem in problems[0], problems


def test_what_may_pass():
    tenant = Tenant(slug="hb-me", region="us-east-1", isolation=Isolation.NONE)
    fine = app(
        {"Action": "s3:GetObject", "Resource": "arn:aws:s3:::uploads/{tenant}/*"},
        {"Action": "s3:GetObject", "Resource": "arn:aws:s3:::shared-assets/logo.png"},
        {"Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:{region}:{account}:q-{tenant}"},
        {"Action": ["xray:PutTraceSegments", "cloudwatch:PutMetricData"], "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::*"},
    )
    assert permission_problems(tenant, fine) == []


def test_duplicate_sids_and_size_are_refused():
    tenant = Tenant(slug="hb-me", region="us-east-1", isolation=Isolation.DEDICATED)
    statement = {"Sid": "Same", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/{tenant}/x"}
    [problem] = permission_problems(tenant, app(statement, statement))
    assert problem == "Sid AppSame is given to more than one statement"
    many = [f"arn:aws:s3:::bucket-with-a-long-name/{{tenant}}/{i:04d}/*" for i in range(200)]
    [problem] = permission_problems(tenant, app({"Action": "s3:GetObject", "Resource": many}))
    assert "IAM allows 10240" in problem


def test_bad_statements_are_refused_before_the_role_exists(seeded):
    register("2026.12.2-bad", {"permissions": [{"Action": "s3:GetObject", "Resource": "*"}]})
    tenant = make_tenant(
        "hb-refused",
        desired_release="2026.12.2-bad",
        isolation=Isolation.NONE,
        function_in_vpc=False,
    )
    job = run_job("tenant_provision", tenant)
    assert job.status == JobStatus.FAILED
    assert job.steps.get(name="role").error.startswith("The release's permissions are refused")
    roles = [r["RoleName"] for r in client("iam").list_roles()["Roles"]]
    assert "opsconsole-hb-refused" not in roles
    assert resources.find(tenant, kind="role") is None


def test_a_deployment_grants_the_new_releases_permissions(seeded):
    from deployments.models import Release, RolloutStatus
    from deployments.rollouts import Target, rollout_start
    from tests.deployments.test_rollout import drive, quick

    tenant = make_tenant(
        "hb-deploy",
        ring=0,
        isolation=Isolation.NONE,
        function_in_vpc=False,
        desired_release=seeded["release_version"],
    )
    assert run_job("tenant_provision", tenant).status == JobStatus.SUCCEEDED
    assert [s["Sid"] for s in role_policy("hb-deploy")["Statement"]] == ["WriteOwnLogs"]
    put_parameters("hb-deploy")
    release = Release.objects.get(version=register())
    rollout = drive(rollout_start(release=release, target=Target(), strategy=quick()))
    assert rollout.status == RolloutStatus.SUCCEEDED, rollout.status_reason
    assert role_policy("hb-deploy")["Statement"][1:] == declared("hb-deploy", account())
    assert identity.role_drift(Tenant.objects.get(pk=tenant.pk)) == []

"""The AWS accounts page: registering (validated), who may do what, removal refused while
tenants live there, the per-region baseline check; and the tenant's account in the
onboarding form and the API."""

from __future__ import annotations

import json

import pytest
from botocore.stub import Stubber
from django.urls import reverse

from opsconsole.audit.models import AuditEvent
from opsconsole.aws import secrets
from opsconsole.aws.clients import aws_account, client
from opsconsole.awsaccounts.models import AwsAccount
from opsconsole.jobs.models import Job, JobStatus
from opsconsole.jobs.runner import job_execute
from tenants.forms import TenantOnboardForm
from tenants.models import Tenant
from tests.api.conftest import auth
from tests.awsaccounts.conftest import SECOND

FORM = {
    "name": "cell-2",
    "account_id": SECOND,
    "role_arn": f"arn:aws:iam::{SECOND}:role/opsconsole-cell",
    "external_id": "",
    "regions": ["us-east-1"],
    "description": "EU customers",
}


def test_an_admin_registers_an_account_and_gets_an_external_id(client_for, admin_user):
    web = client_for(admin_user)
    response = web.post(reverse("awsaccounts:create"), FORM)
    assert response.status_code == 302, response.content[:2000]
    account = AwsAccount.objects.get(name="cell-2")
    assert account.external_id.startswith("opsconsole-") and len(account.external_id) > 30
    assert AuditEvent.objects.filter(action="aws_account.register").exists()
    page = web.get(reverse("awsaccounts:detail", args=["cell-2"])).content.decode()
    # Shown: the customer puts it in the role's trust policy.
    assert account.external_id in page and "sts:ExternalId" in page
    listing = web.get(reverse("awsaccounts:list")).content.decode()
    assert "cell-2" in listing and "default" in listing


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"account_id": "12345"}, "account_id"),
        ({"role_arn": "arn:aws:iam::999999999999:role/x"}, "role_arn"),
        ({"role_arn": "not-an-arn"}, "role_arn"),
        ({"name": "default"}, "name"),
        ({"regions": ["mars-north-1"]}, "regions"),
        ({"external_id": "x"}, "external_id"),
    ],
)
def test_registration_is_validated(client_for, admin_user, change, field):
    response = client_for(admin_user).post(reverse("awsaccounts:create"), {**FORM, **change})
    assert response.status_code == 200
    assert field in response.context["form"].errors, response.context["form"].errors
    assert not AwsAccount.objects.exists()


def test_viewers_see_operators_check_admins_change(
    client_for, viewer_user, operator_user, second_account
):
    viewer = client_for(viewer_user)
    assert viewer.get(reverse("awsaccounts:list")).status_code == 200
    assert viewer.get(reverse("awsaccounts:detail", args=["cell-2"])).status_code == 200
    assert viewer.post(reverse("awsaccounts:create"), FORM).status_code == 403
    check = reverse("awsaccounts:check", args=["cell-2", "us-east-1"])
    assert viewer.post(check).status_code == 403
    operator = client_for(operator_user)
    assert operator.post(reverse("awsaccounts:delete", args=["cell-2"])).status_code == 403
    assert operator.post(check).status_code == 302
    assert Job.objects.filter(kind="aws_account_check", params__region="us-east-1").count() == 1
    operator.post(check)  # a double submit: still one check
    assert Job.objects.filter(kind="aws_account_check").count() == 1
    other = reverse("awsaccounts:check", args=["cell-2", "eu-west-1"])
    operator.post(other)  # not one of the account's regions
    assert Job.objects.filter(kind="aws_account_check").count() == 1


def test_removing_an_account_with_tenants_is_refused_with_the_count(
    client_for, admin_user, second_account
):
    for slug in ("t-one", "t-two"):
        Tenant.objects.create(name=slug, slug=slug, region="us-east-1", aws_account=second_account)
    Tenant.objects.filter(slug="t-two").update(status="offboarded")
    web = client_for(admin_user)
    url = reverse("awsaccounts:delete", args=["cell-2"])
    response = web.post(url, {"confirmed": "yes"}, follow=True)
    assert "2 tenants live in cell-2, 1 of them offboarded" in response.content.decode()
    assert AwsAccount.objects.filter(name="cell-2").exists()
    Tenant.objects.filter(aws_account=second_account).delete()
    web.post(url, {"confirmed": "yes"})
    assert not AwsAccount.objects.filter(name="cell-2").exists()


def _run(job: Job) -> Job:
    for _ in range(5):
        job_execute(job.pk, owner="test")
        job.refresh_from_db()
        if job.is_finished:
            return job
    raise AssertionError(job.status)


def test_the_check_lists_everything_missing_then_passes_once_seeded(
    aws, client_for, operator_user, second_account
):
    web = client_for(operator_user)
    web.post(reverse("awsaccounts:check", args=["cell-2", "us-east-1"]))
    job = _run(Job.objects.get(kind="aws_account_check"))
    assert job.status == JobStatus.FAILED
    page = web.get(reverse("awsaccounts:detail", args=["cell-2"])).content.decode()
    # Every item, not only the first: the check went on past each missing one.
    for item in ("No VPC tagged", "No RDS instance"):
        assert item in page, item
    # The console makes a cell's release repository and bucket on first use.
    assert "No ECR repository" not in page and "No S3 bucket" not in page
    assert "2 missing in us-east-1" in job.error

    from opsconsole.sandbox.seed import sandbox_seed

    with aws_account(second_account):
        sandbox_seed()
    Job.objects.all().delete()
    web.post(reverse("awsaccounts:check", args=["cell-2", "us-east-1"]))
    job = _run(Job.objects.get(kind="aws_account_check"))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.steps.get(name="role").output["account"] == SECOND


def test_a_refused_role_is_explained_on_the_check_page(
    aws, client_for, operator_user, second_account
):
    web = client_for(operator_user)
    web.post(reverse("awsaccounts:check", args=["cell-2", "us-east-1"]))
    with Stubber(client("sts")) as stub:
        stub.add_client_error(
            "assume_role",
            service_error_code="AccessDenied",
            service_message="not authorized to perform: sts:AssumeRole",
            http_status_code=403,
        )
        job = _run(Job.objects.get(kind="aws_account_check"))
    assert job.status == JobStatus.FAILED
    page = web.get(reverse("awsaccounts:detail", args=["cell-2"])).content.decode()
    assert "could not assume arn:aws:iam::222222222222:role/opsconsole-cell" in page
    assert "AccessDenied" in page and "trust policy" in page


def _onboard_data(**extra) -> dict:
    form = TenantOnboardForm()
    data = {n: form.get_initial_for_field(f, n) for n, f in form.fields.items()}
    data = {k: v for k, v in data.items() if v is not None and v is not False}
    return {**data, "name": "Acme", "slug": "acme-cell", **extra}


def test_the_onboarding_form_picks_an_account_that_lists_the_region(second_account):
    form = TenantOnboardForm(_onboard_data(aws_account="cell-2"))
    assert form.is_valid(), form.errors
    assert form.build_tenant().aws_account == second_account
    assert TenantOnboardForm(_onboard_data()).is_valid()  # the console's own
    second_account.regions = ["eu-west-1"]
    second_account.save()
    refused = TenantOnboardForm(_onboard_data(aws_account="cell-2"))
    assert not refused.is_valid()
    assert "does not list us-east-1" in str(refused.errors["aws_account"])
    unknown = TenantOnboardForm(_onboard_data(aws_account="nope"))
    assert not unknown.is_valid() and "aws_account" in unknown.errors


def test_the_api_onboards_into_an_account_and_reads_it_back(
    client, admin_user, aws, second_account
):
    from opsconsole.sandbox.seed import sandbox_seed

    sandbox_seed()
    headers = auth(admin_user)
    body = {
        "name": "Acme",
        "slug": "acme-cell",
        "aws_account": "cell-2",
        "secret_env": {"API_KEY": "v"},
    }
    response = client.post(
        "/api/v1/tenants/", json.dumps(body), content_type="application/json", **headers
    )
    assert response.status_code == 201, response.content
    assert response.json()["tenant"]["aws_account"] == "cell-2"
    read = client.get("/api/v1/tenants/acme-cell", **headers).json()
    assert read["aws_account"] == "cell-2"
    # The secret values went straight to Secrets Manager in the tenant's account.
    name = "opsconsole/tenants/acme-cell/env"
    with aws_account(second_account):
        assert secrets.get_secret_json(secret_id=name) == {"API_KEY": "v"}
    assert secrets.describe_secret(secret_id=name) is None

    own = client.post(
        "/api/v1/tenants/",
        json.dumps({"name": "Own", "slug": "acme-own", "dry_run": True}),
        content_type="application/json",
        **headers,
    )
    assert own.status_code == 200
    second_account.regions = ["eu-west-1"]
    second_account.save()
    refused = client.post(
        "/api/v1/tenants/",
        json.dumps({"name": "B", "slug": "acme-b", "aws_account": "cell-2"}),
        content_type="application/json",
        **headers,
    )
    assert refused.status_code == 400
    assert "aws_account" in {p["field"] for p in refused.json()["problems"]}

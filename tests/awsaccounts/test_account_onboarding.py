"""A tenant in a second AWS account: its onboarding job builds the stack there (the job
runner enters the tenant's account for every step), and nothing of it in the console's."""

from __future__ import annotations

import pytest

from opsconsole.aws import lambda_, secrets
from opsconsole.aws.clients import aws_account, client
from opsconsole.jobs.models import JobStatus
from tests.awsaccounts.conftest import SECOND
from tests.local_postgres import seed_in_process
from tests.tenants.conftest import make_tenant, run_job, seeded, tenant_dbs  # noqa: F401

pytestmark = pytest.mark.usefixtures("seeded", "tenant_dbs")


def test_onboarding_builds_the_stack_in_the_tenants_account(second_account):
    with aws_account(second_account):
        seed_in_process()  # the cell's own baseline: VPC, security groups, shared instance
    tenant = make_tenant("t9-cell", aws_account=second_account)
    job = run_job("tenant_provision", tenant)
    assert job.status == JobStatus.SUCCEEDED, [(s.name, s.error) for s in job.steps.all()]
    tenant.refresh_from_db()
    assert tenant.status == "active"

    name = "opsconsole-t9-cell"
    with aws_account(second_account):
        function = lambda_.get_function(name=name)
        assert function is not None
        assert f":{SECOND}:function:{name}" in function["Configuration"]["FunctionArn"]
        assert secrets.describe_secret(secret_id="opsconsole/tenants/t9-cell/db") is not None
        assert [a for a in client("apigatewayv2").get_apis()["Items"] if a["Name"] == name]
    # Read with the console's own credentials: none of it is there.
    assert lambda_.get_function(name=name) is None
    assert secrets.describe_secret(secret_id="opsconsole/tenants/t9-cell/db") is None
    assert not [a for a in client("apigatewayv2").get_apis()["Items"] if a["Name"] == name]
    # The resource records name the second account's ARNs.
    arns = [r.arn for r in tenant.resources.exclude(arn="")]
    assert arns and all(SECOND in arn for arn in arns if ":iam::" in arn or ":lambda:" in arn)


def test_the_account_id_follows_the_current_account(second_account):
    """Policies, topic and alarm ARNs name the account the calls go to: the console's own
    id, asked once and cached, never stands in for a tenant's account."""
    from tenants.provisioning.common import account_id

    own = account_id("us-east-1")
    with aws_account(second_account):
        assert account_id("us-east-1") == SECOND
    assert account_id("us-east-1") == own != SECOND

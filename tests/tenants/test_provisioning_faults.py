"""Failure paths moto cannot produce, through botocore's Stubber."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from opsconsole.aws.clients import client
from opsconsole.aws.errors import AwsError
from opsconsole.jobs.models import JobStatus, StepStatus
from opsconsole.jobs.registry import StepWait
from opsconsole.jobs.runner import job_execute
from opsconsole.jobs.services import job_retry
from tenants.models import TenantResource
from tenants.provisioning import function
from tests.tenants.conftest import make_tenant, run_job

pytestmark = pytest.mark.usefixtures("seeded", "tenant_dbs")


def _pending(name: str) -> dict:
    return {
        "Configuration": {
            "FunctionName": name,
            "State": "Pending",
            "LastUpdateStatus": "InProgress",
        }
    }


def test_a_function_still_pending_releases_the_worker():
    lam = client("lambda")
    with Stubber(lam) as stub:
        for _ in range(5):
            stub.add_response("get_function", _pending("f"), {"FunctionName": "f"})
        with pytest.raises(StepWait) as wait:
            function._wait_ready("f", "us-east-1", updated=False)
    assert wait.value.detail == "waiting for Lambda (Pending)"


def test_a_role_not_yet_assumable_is_a_wait_not_a_failure():
    lam = client("lambda")
    with Stubber(lam) as stub:
        stub.add_client_error(
            "create_function",
            "InvalidParameterValueException",
            "The role defined for the function cannot be assumed by Lambda.",
            400,
        )
        tenant = make_tenant("t9-role")
        artifact = type(
            "A",
            (),
            {
                "package_type": "Zip",
                "s3_bucket": "bucket",
                "s3_key": "k.zip",
                "architecture": "x86_64",
                "version": "v",
            },
        )()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(
                function,
                "desired_configuration",
                lambda t, a: {"Role": "arn:aws:iam::123456789012:role/opsconsole-t9-role"},
            )
            with pytest.raises(StepWait) as wait:
                function._create(tenant, "opsconsole-t9-role", artifact)
    assert "IAM role to propagate" in wait.value.detail


def test_access_denied_part_way_fails_the_step_with_awss_message_and_retry_resumes():
    tenant = make_tenant("t9-denied")
    apigw = client("apigatewayv2")
    with Stubber(apigw) as stub:
        stub.add_response("get_apis", {"Items": []})
        stub.add_client_error(
            "create_api",
            "AccessDeniedException",
            "User: arn:aws:sts::123456789012:assumed-role/console is not authorized to perform:"
            " apigateway:POST",
            403,
        )
        job = run_job("tenant_provision", tenant)
    assert job.status == JobStatus.FAILED
    api_step = job.steps.get(name="api")
    assert api_step.status == StepStatus.FAILED
    assert "not authorized to perform: apigateway:POST" in api_step.error
    assert "AccessDeniedException" in api_step.error
    # What was created so far is recorded and shown; the later steps did not run.
    kinds = set(TenantResource.objects.filter(tenant=tenant).values_list("kind", flat=True))
    assert {"database", "db_secret", "role", "function", "alias"} <= kinds
    assert "api" not in kinds
    assert job.steps.get(name="alarms").status == StepStatus.PENDING
    tenant.refresh_from_db()
    assert tenant.status == "failed" and "not authorized" in tenant.status_reason

    # Retry resumes from the failed step: the function is not created again.
    function_done_at = job.steps.get(name="function").finished_at
    versions_before = client("lambda").list_versions_by_function(
        FunctionName="opsconsole-t9-denied"
    )["Versions"]
    assert job_retry(job)
    job_execute(job.pk, owner="test-worker")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.steps.get(name="function").finished_at == function_done_at  # not run again
    assert (
        client("lambda").list_versions_by_function(FunctionName="opsconsole-t9-denied")["Versions"]
        == versions_before
    )
    tenant.refresh_from_db()
    assert tenant.status == "active"


def test_throttling_beyond_retries_says_so():
    lam = client("lambda")
    with Stubber(lam) as stub:
        stub.add_client_error("get_function", "TooManyRequestsException", "Rate exceeded", 429)
        with pytest.raises(AwsError) as error:
            from opsconsole.aws import lambda_

            lambda_.get_function(name="opsconsole-x")
    assert error.value.permanent is False
    assert "Rate exceeded" in str(error.value)

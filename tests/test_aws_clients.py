import pytest
from botocore.stub import Stubber

from opsconsole.aws import clients, sts
from opsconsole.aws.errors import AwsError, AwsNotFound


def test_clients_use_standard_retries_and_the_configured_endpoint(settings):
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:4566"
    clients.reset_clients()
    lam = clients.client("lambda", "eu-west-1")
    assert lam.meta.endpoint_url == "http://127.0.0.1:4566"
    assert lam.meta.region_name == "eu-west-1"
    assert lam.meta.config.retries["mode"] == "standard"
    assert clients.client("lambda", "eu-west-1") is lam  # cached
    clients.reset_clients()


def test_client_errors_become_aws_errors_with_permanence(settings):
    clients.reset_clients()
    client = clients.client("sts")
    with Stubber(client) as stub:
        stub.add_client_error("get_caller_identity", "Throttling", "Rate exceeded", 400)
        with pytest.raises(AwsError) as throttled:
            sts.get_caller_identity()
        stub.add_client_error("get_caller_identity", "AccessDenied", "Not authorized", 403)
        with pytest.raises(AwsError) as denied:
            sts.get_caller_identity()
    assert throttled.value.permanent is False
    assert "Rate exceeded" in str(throttled.value)
    assert denied.value.permanent is True
    assert str(denied.value) == "GetCallerIdentity: AccessDenied: Not authorized"
    clients.reset_clients()


def test_not_found_is_its_own_type(aws):
    from opsconsole.aws import rds, secrets

    assert rds.describe_db_instance(identifier="nope") is None
    assert secrets.describe_secret(secret_id="nope") is None
    with pytest.raises(AwsNotFound):
        secrets.get_secret_json(secret_id="nope")

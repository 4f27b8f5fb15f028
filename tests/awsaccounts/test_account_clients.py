"""Every client built inside ``aws_account(...)`` works in that account: credentials from
STS AssumeRole with the account's external id, refreshed before they expire."""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.stub import Stubber

from opsconsole.aws import clients, lambda_
from opsconsole.aws.clients import aws_account, client
from opsconsole.aws.errors import AwsError
from tests.awsaccounts.conftest import SECOND, THIRD

pytestmark = pytest.mark.usefixtures("aws")


def _identity() -> str:
    return client("sts").get_caller_identity()["Account"]


def test_calls_go_to_the_entered_account_and_back(second_account, third_account):
    own = _identity()
    with aws_account(second_account):
        assert _identity() == SECOND
        with aws_account(third_account):
            assert _identity() == THIRD
        assert _identity() == SECOND
    assert _identity() == own != SECOND
    with aws_account(None):
        assert _identity() == own


def test_assume_role_sends_the_external_id_and_a_named_session(second_account):
    role = clients.as_account_role(second_account)
    sts = client("sts")  # the console's own: it asks for the other account's credentials
    with Stubber(sts) as stub:
        stub.add_response(
            "assume_role",
            {
                "Credentials": {
                    "AccessKeyId": "ASIAEXAMPLEEXAMPLE01",
                    "SecretAccessKey": "s" * 40,
                    "SessionToken": "token",
                    "Expiration": clients.now() + timedelta(hours=1),
                }
            },
            expected_params={
                "RoleArn": "arn:aws:iam::222222222222:role/opsconsole-cell",
                "RoleSessionName": "opsconsole-cell-2",
                "ExternalId": "ext-cell-2",
                "DurationSeconds": 3600,
            },
        )
        creds = clients.assume_role(role)
        stub.assert_no_pending_responses()
    assert creds["access_key"] == "ASIAEXAMPLEEXAMPLE01"


def test_a_refused_role_says_which_and_what_to_check(second_account):
    sts = client("sts")
    with Stubber(sts) as stub:
        stub.add_client_error(
            "assume_role",
            service_error_code="AccessDenied",
            service_message="User: arn:aws:iam::123456789012:role/console is not authorized "
            "to perform: sts:AssumeRole on resource: "
            "arn:aws:iam::222222222222:role/opsconsole-cell",
            http_status_code=403,
        )
        with aws_account(second_account), pytest.raises(AwsError) as refused:
            lambda_client = client("lambda")
            lambda_client.list_functions()
    message = str(refused.value)
    assert refused.value.code == "AccessDenied" and refused.value.permanent
    assert "arn:aws:iam::222222222222:role/opsconsole-cell" in message
    assert "cell-2" in message and "external id" in message and "trust policy" in message


def test_credentials_are_reused_then_refreshed_before_they_expire(second_account, monkeypatch):
    calls = []
    real = clients.assume_role
    clock = {"now": clients.now()}
    start = clock["now"]

    def counting(role):
        # Real credentials from moto, valid for an hour of the test's clock.
        calls.append(role.name)
        return {**real(role), "expiry_time": (clock["now"] + timedelta(hours=1)).isoformat()}

    monkeypatch.setattr(clients, "assume_role", counting)
    monkeypatch.setattr(clients, "now", lambda: clock["now"])
    with aws_account(second_account):
        assert _identity() == SECOND
        client("lambda", "eu-west-1").list_functions()  # another service and region
        assert _identity() == SECOND
    assert calls == ["cell-2"]  # one AssumeRole for every client of the account

    # 50 minutes later the one-hour credentials are within botocore's refresh window.
    clock["now"] = start + timedelta(minutes=50)
    with aws_account(second_account):
        assert _identity() == SECOND
    assert calls == ["cell-2", "cell-2"]
    with aws_account(second_account):
        assert _identity() == SECOND
    assert calls == ["cell-2", "cell-2"]


def test_resources_live_in_their_own_account(second_account):
    role = "arn:aws:iam::{}:role/fn"
    with aws_account(second_account):
        client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")
        client("lambda").create_function(
            FunctionName="only-in-second",
            Runtime="python3.12",
            Role=role.format(SECOND),
            Handler="x.handler",
            Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
        )
        assert lambda_.get_function(name="only-in-second") is not None
    assert lambda_.get_function(name="only-in-second") is None

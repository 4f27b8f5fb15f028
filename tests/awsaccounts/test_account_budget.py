"""The Lambda rate budget is per account and region: each account gets its own 10/s, and
the budget object deployments cache per region books each call in the account it goes to."""

from __future__ import annotations

import uuid

import pytest

from deployments import pipeline
from opsconsole.aws.clients import aws_account
from opsconsole.aws.rate_budget import lambda_budget, redis_client
from tests.awsaccounts.conftest import SECOND, THIRD
from tests.deployments.test_rollout_budget import FakeClock


@pytest.fixture
def prefix(settings):
    settings.RATE_BUDGET_PREFIX = f"test-budget-{uuid.uuid4().hex[:8]}"
    settings.LAMBDA_CONTROL_RATE = 10.0
    settings.LAMBDA_CONTROL_BURST = 5.0
    pipeline._budget.cache_clear()
    yield settings.RATE_BUDGET_PREFIX
    pipeline._budget.cache_clear()
    conn = redis_client()
    for key in conn.scan_iter(f"{settings.RATE_BUDGET_PREFIX}:*"):
        conn.delete(key)


def test_the_console_account_keeps_its_key_and_others_get_their_own(
    prefix, second_account, third_account
):
    budget = pipeline.budget_for("us-east-1")  # one object, cached per region
    assert budget.bucket == f"{prefix}:lambda-control:default:us-east-1"
    with aws_account(second_account):
        assert budget.bucket == f"{prefix}:lambda-control:{SECOND}:us-east-1"
        with aws_account(third_account):
            assert pipeline.budget_for("us-east-1").bucket.endswith(f":{THIRD}:us-east-1")
    assert budget.bucket == f"{prefix}:lambda-control:default:us-east-1"
    # A budget named for an account keeps that name whatever the context.
    with aws_account(second_account):
        assert lambda_budget(region="eu-west-1", account="acct").bucket.endswith(":acct:eu-west-1")


def test_two_accounts_each_get_their_own_ten_a_second(prefix, second_account, third_account):
    clock = FakeClock()
    budget = lambda_budget(region="us-east-1", clock=clock, sleep=clock.sleep)
    granted: dict[str, list[float]] = {"cell-2": [], "cell-3": []}
    # Workers of both accounts' shares, interleaved, through one budget object.
    for i in range(200):
        account = second_account if i % 2 else third_account
        with aws_account(account):
            budget.take(timeout_s=600)
        granted[account.name].append(clock())
    start = 1_000_000.0
    for times in granted.values():
        # 100 calls an account: burst 5, then 10/s, about 9.5 s; one shared bucket would
        # have taken 19.5 s for the 200.
        assert 9.0 <= times[-1] - start <= 10.0
    assert clock() - start <= 10.0

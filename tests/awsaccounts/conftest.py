"""Registered AWS accounts for the tests (in-process moto answers AssumeRole for any role,
and keeps each account's resources apart, by the account in the role's ARN)."""

from __future__ import annotations

import pytest

from opsconsole.awsaccounts.models import AwsAccount

SECOND = "222222222222"
THIRD = "333333333333"


def register(name: str, account_id: str, *, regions=("us-east-1",)) -> AwsAccount:
    return AwsAccount.objects.create(
        name=name,
        account_id=account_id,
        role_arn=f"arn:aws:iam::{account_id}:role/opsconsole-cell",
        external_id=f"ext-{name}",
        regions=list(regions),
    )


@pytest.fixture
def second_account(db) -> AwsAccount:
    return register("cell-2", SECOND)


@pytest.fixture
def third_account(db) -> AwsAccount:
    return register("cell-3", THIRD)

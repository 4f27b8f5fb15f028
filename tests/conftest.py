"""Shared fixtures: a user of each role plus an outsider, and in-process moto.

The database is the real PostgreSQL named by DATABASE_URL (the test command resolves it:
the environment, the machine's server on 127.0.0.1:5432, or an embedded one).
"""

from __future__ import annotations

import os

import pytest

from opsconsole.accounts.models import Role, User

PASSWORD = "correct-horse-battery-staple"


def _user(username: str, role: str) -> User:
    return User.objects.create_user(username=username, password=PASSWORD, role=role)


@pytest.fixture
def admin_user(db) -> User:
    return _user("ada", Role.ADMIN)


@pytest.fixture
def operator_user(db) -> User:
    return _user("otto", Role.OPERATOR)


@pytest.fixture
def viewer_user(db) -> User:
    return _user("vera", Role.VIEWER)


@pytest.fixture
def outsider_user(db) -> User:
    """Logged in, but given no role in the console."""
    return _user("olga", Role.NONE)


@pytest.fixture
def client_for(client):
    def login(user: User):
        client.force_login(user)
        return client

    return login


@pytest.fixture
def aws(settings):
    """In-process moto for unit tests: every boto3 client built by opsconsole.aws hits it."""
    from moto import mock_aws

    from opsconsole.aws.clients import reset_clients

    settings.AWS_ENDPOINT_URL = ""
    for key in ("AWS_ENDPOINT_URL",):
        os.environ.pop(key, None)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    reset_clients()
    # Lambda without Docker: invoke then echoes the payload, as on the sandbox server.
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield
    reset_clients()

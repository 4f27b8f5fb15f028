"""API tests: a bearer token for any user, and the sandbox's baseline in moto."""

from __future__ import annotations

import pytest

from opsconsole.api.tokens import api_token_create


@pytest.fixture
def seeded(aws, db):
    """The sandbox baseline and demo release in in-process moto."""
    from opsconsole.sandbox.seed import sandbox_seed

    return sandbox_seed()


def auth(user, **kwargs) -> dict:
    _, raw = api_token_create(user=user, name="ci", **kwargs)
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture(autouse=True)
def _own_rate_window(settings):
    # Each test's tokens are new rows; the limit is generous unless a test lowers it.
    settings.API_RATE_PER_MINUTE = 10_000

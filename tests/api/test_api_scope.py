"""The API's half of the cross-tenant matrix (tests/test_tenant_scope_matrix.py covers
the pages): generated from the API's own routes, so a new operation cannot escape it.

For every operation, a token whose owner lost their role gets 404; for every operation
about one tenant (its slug, a rollout or a job of it in the path), a token of a user
scoped to another tenant gets 404, and one scoped to the tenant does not. Operations that
are about no single tenant are listed below with what a scoped token gets instead.
"""

from __future__ import annotations

import json
import re

import pytest

from deployments.models import Deployment, Release, Rollout
from opsconsole.accounts.models import Role, User
from opsconsole.api.main import api
from opsconsole.api.tokens import api_token_create
from opsconsole.jobs.models import Job
from tenants.models import Tenant, TenantScope, TenantStatus

# Operations about no single tenant: why, and how a scoped token is fenced in there.
FLEET_WIDE = {
    ("GET", "/api/v1/releases/"): "releases are shared by every tenant",
    ("POST", "/api/v1/releases/"): "releases are shared (operator only)",
    ("POST", "/api/v1/releases/upload"): "releases are shared (operator only)",
    ("GET", "/api/v1/releases/{version}"): "releases are shared by every tenant",
    ("GET", "/api/v1/rollouts/"): "lists only rollouts reaching the token's tenants",
    ("POST", "/api/v1/rollouts/"): "a scoped token must name its own tenants",
    ("POST", "/api/v1/rollouts/preview"): "a scoped token must name its own tenants",
    ("GET", "/api/v1/tenants/"): "lists only the token's tenants",
    ("POST", "/api/v1/tenants/"): "a scoped token cannot onboard",
}
BODIES = {
    "/api/v1/tenants/{slug}/offboard": {"confirm": "sc-theirs"},
    "/api/v1/tenants/{slug}/restore": {"s3_uri": "s3://b/k", "confirm": "sc-theirs"},
    "/api/v1/tenants/{slug}": {"ring": 2},
}


def operations() -> list[tuple[str, str]]:
    found = []
    for path, item in api.get_openapi_schema()["paths"].items():
        found += [(method.upper(), path) for method in item if method != "parameters"]
    return sorted(found)


@pytest.fixture
def world(db, aws):
    Tenant.objects.create(
        name="Mine", slug="sc-mine", region="us-east-1", status=TenantStatus.ACTIVE
    )
    theirs = Tenant.objects.create(
        name="Theirs", slug="sc-theirs", region="us-east-1", status=TenantStatus.ACTIVE
    )
    release = Release.objects.create(version="sc-1", artifact_type="zip")
    rollout = Rollout.objects.create(release=release, wave_sizes=[1], status="halted")
    Deployment.objects.create(rollout=rollout, tenant=theirs, wave=0, status="failed")
    job = Job.objects.create(kind="tenant_reconcile", subject_type="tenant", subject_id=theirs.slug)
    return {"slug": theirs.slug, "rollout_id": rollout.pk, "job_id": job.pk, "version": "sc-1"}


def token_for(username: str, role: str, *, scope: list[Tenant] | None = None) -> dict:
    user = User.objects.create_user(username=username, role=role)
    if scope is not None:
        TenantScope.objects.create(user=user).tenants.set(scope)
    _, raw = api_token_create(user=user, name="matrix")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def call(client, method: str, path: str, world: dict, headers: dict):
    url = re.sub(r"\{(\w+)\}", lambda m: str(world[m.group(1)]), path)
    body = BODIES.get(path, {})
    return client.generic(method, url, json.dumps(body), "application/json", **headers)


def test_every_operation_is_in_the_matrix():
    for method, path in operations():
        bound = "{slug}" in path or "{rollout_id}" in path or "{job_id}" in path
        assert bound or (method, path) in FLEET_WIDE, (
            f"{method} {path}: add it to the matrix (about one tenant, or FLEET_WIDE with why)"
        )


@pytest.mark.parametrize(("method", "path"), operations())
def test_a_token_whose_owner_lost_the_role_learns_nothing(client, world, method, path):
    headers = token_for("gone", Role.ADMIN)
    User.objects.filter(username="gone").update(role=Role.NONE)
    assert call(client, method, path, world, headers).status_code == 404


BOUND = [op for op in operations() if op not in FLEET_WIDE]


@pytest.mark.parametrize(("method", "path"), BOUND)
@pytest.mark.parametrize("role", [Role.VIEWER, Role.ADMIN])
def test_a_token_scoped_to_another_tenant_gets_404(client, world, method, path, role):
    mine = Tenant.objects.get(slug="sc-mine")
    headers = token_for("scoped", role, scope=[mine])
    answer = call(client, method, path, world, headers)
    assert answer.status_code == 404, (method, path, answer.content[:200])
    assert Tenant.objects.get(slug="sc-theirs").status == TenantStatus.ACTIVE


@pytest.mark.parametrize(("method", "path"), [op for op in BOUND if op[0] == "GET"])
def test_a_token_scoped_to_the_tenant_sees_it(client, world, method, path):
    theirs = Tenant.objects.get(slug="sc-theirs")
    headers = token_for("owner", Role.VIEWER, scope=[theirs])
    assert call(client, method, path, world, headers).status_code == 200


def test_fleet_wide_operations_fence_a_scoped_token(client, world, monkeypatch):
    from deployments import rollouts

    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)
    mine = Tenant.objects.get(slug="sc-mine")
    headers = token_for("fenced", Role.ADMIN, scope=[mine])
    listed = client.get("/api/v1/tenants/", **headers).json()
    assert [t["slug"] for t in listed["items"]] == ["sc-mine"] and listed["count"] == 1
    assert client.get("/api/v1/rollouts/", **headers).json()["count"] == 0
    for url in ("/api/v1/rollouts/", "/api/v1/rollouts/preview"):
        every = client.post(url, {"release": "sc-1"}, "application/json", **headers)
        assert every.status_code == 400 and "target" in every.json()["field"], every.content
        theirs = client.post(
            url,
            {"release": "sc-1", "target": "tenants", "values": ["sc-theirs"]},
            "application/json",
            **headers,
        )
        assert theirs.status_code == 400 and "sc-theirs" in theirs.json()["message"]
    onboard = client.post(
        "/api/v1/tenants/", {"name": "X", "slug": "sc-new"}, "application/json", **headers
    )
    assert onboard.status_code == 403 and not Tenant.objects.filter(slug="sc-new").exists()

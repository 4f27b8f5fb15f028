"""Tenants through the API: the onboarding form's validation and plan, idempotent
changes, the tenant scope, and jobs to follow."""

from __future__ import annotations

import json

import pytest

from opsconsole.jobs.models import Job
from tenants.models import Tenant, TenantScope, TenantStatus
from tests.api.conftest import auth

TENANTS = "/api/v1/tenants/"


def post(client, url, body, headers, **extra):
    return client.post(url, json.dumps(body), content_type="application/json", **headers, **extra)


def test_dry_run_shows_the_plan_and_creates_nothing(client, admin_user, seeded):
    response = post(
        client,
        TENANTS,
        {"name": "Acme", "slug": "ap-acme", "dry_run": True, "secret_env": {"STRIPE": "sk_1"}},
        auth(admin_user),
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["tenant"] is None and body["job"] is None
    kinds = {r["kind"] for r in body["plan"]["resources"]}
    assert {"Lambda function", "HTTP API"} <= kinds or len(kinds) >= 4, kinds
    assert body["plan"]["release"] == "2026.11.0-demo"
    assert float(body["plan"]["monthly_usd"]) > 0
    assert not Tenant.objects.filter(slug="ap-acme").exists()
    assert "sk_1" not in response.content.decode()


def test_the_forms_validation_names_the_field(client, admin_user, seeded):
    response = post(
        client,
        TENANTS,
        {"name": "Acme", "slug": "Not A Slug", "env_vars": {"AWS_REGION": "x"}},
        auth(admin_user),
    )
    assert response.status_code == 400
    fields = {p["field"] for p in response.json()["problems"]}
    assert {"slug", "env_vars"} <= fields, response.json()
    unknown = post(
        client, TENANTS, {"name": "A", "slug": "ap-b", "colour": "red"}, auth(admin_user)
    )
    assert unknown.status_code == 422 and unknown.json()["field"] == "colour"
    smuggled = post(
        client,
        TENANTS,
        {"name": "A", "slug": "ap-c", "env_vars": {"A": "1\nB=2"}},
        auth(admin_user),
    )
    assert smuggled.status_code == 400 and "line breaks" in smuggled.json()["message"]


def test_onboard_with_an_idempotency_key_happens_once(client, admin_user, seeded):
    headers = auth(admin_user)
    body = {"name": "Acme", "slug": "ap-once"}
    first = post(client, TENANTS, body, headers, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201, first.content
    second = post(client, TENANTS, body, headers, HTTP_IDEMPOTENCY_KEY="k-1")
    assert second.status_code == 201 and second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Tenant.objects.filter(slug="ap-once").count() == 1
    assert Job.objects.filter(subject_id="ap-once").count() == 1
    other = post(
        client, TENANTS, {"name": "B", "slug": "ap-twice"}, headers, HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert other.status_code == 422 and "another request" in other.json()["message"]
    job = client.get(first.json()["job"]["url"], **headers).json()
    assert job["kind"] == "tenant_provision" and job["steps"], job


def test_only_admins_onboard(client, operator_user, seeded):
    response = post(client, TENANTS, {"name": "A", "slug": "ap-op"}, auth(operator_user))
    assert response.status_code == 403


@pytest.fixture
def two_tenants(db):
    mine = Tenant.objects.create(
        name="Mine", slug="ap-mine", region="us-east-1", status=TenantStatus.ACTIVE
    )
    theirs = Tenant.objects.create(
        name="Theirs", slug="ap-theirs", region="us-east-1", status=TenantStatus.ACTIVE
    )
    return mine, theirs


def test_a_scoped_token_sees_only_its_tenants(client, aws, operator_user, two_tenants):
    mine, theirs = two_tenants
    TenantScope.objects.create(user=operator_user).tenants.add(mine)
    headers = auth(operator_user)
    listed = client.get(TENANTS, **headers).json()
    assert [t["slug"] for t in listed["items"]] == ["ap-mine"] and listed["count"] == 1
    assert client.get(f"{TENANTS}ap-theirs", **headers).status_code == 404
    assert client.post(f"{TENANTS}ap-theirs/suspend", **headers).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == TenantStatus.ACTIVE
    suspended = client.post(f"{TENANTS}ap-mine/suspend", **headers)
    assert suspended.status_code == 200 and suspended.json()["tenant"]["status"] == "suspended"
    job_id = suspended.json()["job"]["id"]
    assert client.get(f"/api/v1/jobs/{job_id}", **headers).status_code == 200
    their_job = Job.objects.create(
        kind="tenant_suspend", subject_type="tenant", subject_id="ap-theirs"
    )
    assert client.get(f"/api/v1/jobs/{their_job.pk}", **headers).status_code == 404
    # The wrong state is a conflict with the reason, not a 500.
    again = client.post(f"{TENANTS}ap-mine/suspend", **headers)
    assert again.status_code == 409 and "suspended" in again.json()["message"]


def test_offboard_needs_the_slug_typed_again(client, aws, admin_user, two_tenants):
    headers = auth(admin_user)
    wrong = post(client, f"{TENANTS}ap-mine/offboard", {"confirm": "ap-min"}, headers)
    assert wrong.status_code == 400 and wrong.json()["field"] == "confirm"
    right = post(client, f"{TENANTS}ap-mine/offboard", {"confirm": "ap-mine"}, headers)
    assert right.status_code == 200 and right.json()["tenant"]["status"] == "offboarding"


def test_drift_before_any_check(client, aws, viewer_user, two_tenants):
    body = client.get(f"{TENANTS}ap-mine/drift", **auth(viewer_user)).json()
    assert body["status"] == "never" and body["drift"] is None

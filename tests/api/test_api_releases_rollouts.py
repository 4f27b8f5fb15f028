"""The CI API: bearer tokens, roles, release registration and rollouts as JSON."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from deployments.models import ApiToken, Release, Rollout
from deployments.rollouts import Strategy
from opsconsole.api.tokens import TokenRefused, api_token_create
from opsconsole.audit.models import AuditEvent
from opsconsole.sandbox.demo_release import app_files, build_zip
from tenants.models import Tenant, TenantStatus
from tests.api.conftest import auth


def test_no_token_or_a_bad_one_is_401(client, db):
    assert client.get("/api/v1/releases/").status_code == 401
    bad = client.get("/api/v1/releases/", HTTP_AUTHORIZATION="Bearer ocs_nope")
    assert bad.status_code == 401


def test_roles(client, viewer_user, outsider_user):
    # A user without a role cannot make a token; one who lost the role has one that
    # answers 404 (as every page does to an outsider).
    with pytest.raises(TokenRefused):
        api_token_create(user=outsider_user, name="ci")
    lost = auth(outsider_user.__class__.objects.create_user("lost", role="viewer"))
    outsider_user.__class__.objects.filter(username="lost").update(role="")
    assert client.get("/api/v1/releases/", **lost).status_code == 404
    headers = auth(viewer_user)
    assert client.get("/api/v1/releases/", **headers).status_code == 200
    refused = client.post(
        "/api/v1/releases/", {"version": "x", "image": "app:1"}, "application/json", **headers
    )
    assert refused.status_code == 403, refused.content
    assert "operator" in refused.json()["message"]
    assert not Release.objects.filter(version="x").exists()


def test_token_is_stored_as_a_hash(operator_user):
    token, raw = api_token_create(user=operator_user, name="ci")
    assert raw not in (token.key_sha256, token.prefix) and raw.startswith(token.prefix)
    assert not ApiToken.objects.filter(key_sha256=raw).exists()


def test_ci_registers_a_zip_and_starts_a_rollout(client, operator_user, seeded, monkeypatch):
    from deployments import rollouts

    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)
    headers = auth(operator_user)
    upload = SimpleUploadedFile("app.zip", build_zip(app_files("2026.12.0")))
    migration = SimpleUploadedFile("0001_init.sql", b"CREATE TABLE t (id int);\n")
    response = client.post(
        "/api/v1/releases/upload",
        {
            "version": "2026.12.0",
            "artifact": "zip",
            "runtime": "python3.12",
            "handler": "app.handler",
            "file": upload,
            "migrations": [migration],
        },
        **headers,
    )
    assert response.status_code == 201, response.content
    assert response.json()["migrations"] == ["0001_init.sql"]
    assert AuditEvent.objects.filter(action="release.register", actor=operator_user).exists()

    again = client.post(
        "/api/v1/releases/upload",
        {
            "version": "2026.12.0",
            "artifact": "zip",
            "runtime": "python3.12",
            "handler": "app.handler",
            "file": SimpleUploadedFile("a.zip", b"not a zip"),
        },
        **headers,
    )
    assert again.status_code == 400
    body = again.json()
    problems = " ".join(p["message"] for p in body["problems"])
    assert "already registered" in problems and "not a zip" in problems
    assert body["field"] == "version" and body["message"]

    for i in range(3):
        Tenant.objects.create(
            name=f"T{i}", slug=f"t5-api{i}", region="us-east-1", status=TenantStatus.ACTIVE
        )
    preview = client.post(
        "/api/v1/rollouts/preview",
        {"release": "2026.12.0"},
        content_type="application/json",
        **headers,
    )
    assert preview.status_code == 200 and [len(w) for w in preview.json()["waves"]] == [1, 1, 1]
    assert not Rollout.objects.exists()
    started = client.post(
        "/api/v1/rollouts/",
        {"release": "2026.12.0", "bake_s": 0},
        content_type="application/json",
        **headers,
    )
    assert started.status_code == 201, started.content
    body = started.json()
    assert body["status"] == "running" and body["counts"]["pending"] == 3
    assert sorted(d["tenant"] for d in body["deployments"]) == ["t5-api0", "t5-api1", "t5-api2"]
    rollout = Rollout.objects.get(pk=body["id"])
    # The default max parallel follows from the budget (rollouts.default_max_parallel).
    assert rollout.bake_s == 0 and rollout.max_parallel == Strategy.default().max_parallel
    status = client.get(f"/api/v1/rollouts/{rollout.pk}", **headers).json()
    assert status["wave_sizes"] == [1, 1, 1]
    paused = client.post(f"/api/v1/rollouts/{rollout.pk}/pause", **headers)
    assert paused.json()["status"] == "paused" and paused.json()["changed"] == 1
    again = client.post(f"/api/v1/rollouts/{rollout.pk}/pause", **headers)
    assert again.json()["changed"] == 0
    listed = client.get("/api/v1/rollouts/?limit=1", **headers).json()
    assert listed["count"] == 1 and listed["items"][0]["id"] == rollout.pk
    event = AuditEvent.objects.filter(action="rollout.pause").get()
    assert event.details["via"] == "api" and event.details["api_token_name"].startswith("ci (ocs_")


def test_rollback_moves_aliases_back_unless_asked_to_redeploy(
    client, operator_user, seeded, monkeypatch
):
    from deployments import rollouts
    from deployments.models import Deployment, DeploymentStatus

    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)
    headers = auth(operator_user)
    demo = Release.objects.get()
    Release.objects.create(version="2026.12.1", artifact_type="zip", runtime="python3.12")
    for i in range(2):
        Tenant.objects.create(
            name=f"T{i}",
            slug=f"t5-rb{i}",
            region="us-east-1",
            status=TenantStatus.ACTIVE,
            current_release=demo.version,
        )
    made = []
    for method in ("alias", "redeploy", None):
        rollout = rollouts.rollout_start(
            release=Release.objects.get(version="2026.12.1"),
            target=rollouts.Target(on_conflict="skip"),
            strategy=Strategy(bake_s=0),
        )
        Deployment.objects.filter(rollout=rollout).update(status=DeploymentStatus.SUCCEEDED)
        body = {"method": method} if method else {}
        answer = client.post(
            f"/api/v1/rollouts/{rollout.pk}/rollback", body, "application/json", **headers
        )
        assert answer.status_code == 201, answer.content
        [back] = answer.json()["rollouts"]
        assert back["release"] == demo.version and back["rollback_of"] == rollout.pk
        made.append(back["method"])
        Rollout.objects.filter(pk=back["id"]).update(status="cancelled")
    assert made == ["alias", "deploy", "alias"]
    bad = client.post(
        f"/api/v1/rollouts/{rollout.pk}/rollback", {"method": "x"}, "application/json", **headers
    )
    assert bad.status_code == 422 and bad.json()["field"] == "method"


@pytest.mark.parametrize(
    "body", [{"release": "nope"}, {"release": "2026.11.0-demo", "target": "rings", "values": [7]}]
)
def test_bad_rollout_requests_are_400(client, operator_user, seeded, body):
    response = client.post(
        "/api/v1/rollouts/", body, content_type="application/json", **auth(operator_user)
    )
    assert response.status_code == 400 and response.json()["problems"]
    assert response.json()["message"]


def test_a_body_that_does_not_match_the_schema_names_the_field(client, operator_user, db):
    response = client.post(
        "/api/v1/rollouts/",
        {"release": "x", "max_parallel": 0},
        content_type="application/json",
        **auth(operator_user),
    )
    assert response.status_code == 422
    assert response.json()["field"] == "max_parallel"

"""A release's API shape and alarm rules arrive with the deployment that brings it, and
go back with a roll back (in-process moto, real tenant databases, jobs inline)."""

from __future__ import annotations

import pytest

from deployments.models import DeploymentStatus, Release, RolloutStatus, Traffic
from deployments.releases import ReleaseInput, release_register
from deployments.rollbacks import rollout_rollback
from deployments.rollouts import RolloutRefused, Target, rollout_start
from opsconsole.aws.clients import client
from opsconsole.sandbox.demo_release import DEMO_VERSION, app_files, build_zip
from tenants import naming
from tenants.drift import tenant_drift
from tests.deployments.test_rollout import drive, quick

pytestmark = pytest.mark.usefixtures("fast_budget")

# The demo app serves both payload formats; on a named stage it would see the stage in
# every path (and fail its health check, rightly: tests/deployments/test_health_check.py).
SHAPED = {
    "api": {
        "payload_format": "1.0",
        "throttle_rate": 50,
        "throttle_burst": 100,
        "cors": {"allow_origins": ["https://app.example.com"], "allow_methods": ["GET"]},
    },
    "alarms": {"errors": {"threshold": 10, "period_s": 300, "evaluation_periods": 1}},
}


def _register(version: str, app_settings: dict) -> Release:
    demo = Release.objects.get(version=DEMO_VERSION)
    return release_register(
        ReleaseInput(
            version=version,
            artifact="zip",
            zip_bytes=build_zip(app_files(version)),
            runtime="python3.12",
            handler="app.handler",
            migration_files=[(m.name, m.sql) for m in demo.migrations.all()],
            app_settings=app_settings,
        )
    )


def _shape(tenant) -> dict:
    api = client("apigatewayv2")
    [found] = [a for a in api.get_apis()["Items"] if a["Name"] == naming.api_name(tenant.slug)]
    [integration] = api.get_integrations(ApiId=found["ApiId"])["Items"]
    stages = sorted(s["StageName"] for s in api.get_stages(ApiId=found["ApiId"])["Items"])
    return {
        "payload": integration["PayloadFormatVersion"],
        "stages": stages,
        "cors": (found.get("CorsConfiguration") or {}).get("AllowOrigins"),
    }


def _errors_alarm(tenant) -> tuple:
    [alarm] = client("cloudwatch").describe_alarms(
        AlarmNames=[naming.alarm_name(tenant.slug, "errors")]
    )["MetricAlarms"]
    return alarm["Threshold"], alarm["Period"], alarm["EvaluationPeriods"]


def test_the_api_shape_and_alarms_follow_the_release_and_its_roll_back(fleet):
    tenants = fleet(2, prefix="t5-s")
    before = {t.slug: (_shape(t), _errors_alarm(t)) for t in tenants}
    assert before[tenants[0].slug][0] == {"payload": "2.0", "stages": ["$default"], "cors": None}
    release = _register("2026.12.60", SHAPED)
    rollout = drive(rollout_start(release=release, target=Target(), strategy=quick()))
    assert rollout.status == RolloutStatus.SUCCEEDED, [d.reason for d in rollout.deployments.all()]
    for tenant in tenants:
        assert _shape(tenant) == {
            "payload": "1.0",
            "stages": ["$default"],
            "cors": ["https://app.example.com"],
        }
        assert _errors_alarm(tenant) == (10.0, 300, 1)
        tenant.refresh_from_db()
        assert tenant_drift(tenant) == [], [
            (d.kind, d.field, d.expected, d.actual) for d in tenant_drift(tenant)
        ]

    [back] = rollout_rollback(rollout)
    back = drive(back)
    assert back.status == RolloutStatus.SUCCEEDED
    for tenant in tenants:
        assert _shape(tenant) == before[tenant.slug][0]
        assert _errors_alarm(tenant) == before[tenant.slug][1]
        tenant.refresh_from_db()
        assert tenant_drift(tenant) == []


def test_a_release_without_changes_touches_neither(fleet, monkeypatch):
    from tenants.provisioning import alarms, api

    fleet(1, prefix="t5-s")
    called = []
    monkeypatch.setattr(api, "step_api", lambda job, step: called.append("api"))
    monkeypatch.setattr(alarms, "step_alarms", lambda job, step: called.append("alarms"))
    from deployments import release_settings

    monkeypatch.setattr(release_settings, "step_api", api.step_api)
    monkeypatch.setattr(release_settings, "step_alarms", alarms.step_alarms)
    rollout = drive(
        rollout_start(release=_register("2026.12.61", {}), target=Target(), strategy=quick())
    )
    assert rollout.status == RolloutStatus.SUCCEEDED
    assert called == []


def test_a_canary_cannot_change_the_payload_format(fleet):
    fleet(1, prefix="t5-s")
    release = _register("2026.12.62", SHAPED)
    with pytest.raises(RolloutRefused, match="changes the API's payload format for 1 tenant"):
        rollout_start(release=release, target=Target(), strategy=quick(traffic=Traffic.CANARY))


def test_a_failed_deployment_puts_the_shape_back_with_the_alias(fleet, monkeypatch):
    from deployments import pipeline

    [tenant] = fleet(1, prefix="t5-s")
    before = _shape(tenant)
    original = pipeline.step_verify

    def failing_verify(job, step):
        raise RuntimeError("Alarm errors in ALARM (made up)")

    monkeypatch.setattr(pipeline, "step_verify", failing_verify)
    from opsconsole.jobs import registry

    kind = registry.get_kind(pipeline.JOB_KIND)
    steps = list(kind.steps)
    monkeypatch.setattr(
        kind,
        "steps",
        [
            s if s.name != "verify" else registry.StepDef(s.name, s.label, failing_verify)
            for s in steps
        ],
    )
    rollout = drive(
        rollout_start(release=_register("2026.12.63", SHAPED), target=Target(), strategy=quick())
    )
    dep = rollout.deployments.get()
    assert dep.status == DeploymentStatus.FAILED and "made up" in dep.reason
    assert _shape(tenant) == before
    assert original is not failing_verify


def test_the_health_check_sends_what_the_api_will_send(fleet):
    """A release declaring a named stage meets the demo app, which routes on the path
    alone: under /production its /healthz is not found, so the deployment stops before
    the alias (and the API) move, with the app's own answer."""
    [tenant] = fleet(1, prefix="t5-s")
    before = _shape(tenant)
    staged = {"api": {"stage": "production"}}
    rollout = drive(
        rollout_start(release=_register("2026.12.64", staged), target=Target(), strategy=quick())
    )
    dep = rollout.deployments.get()
    assert dep.status == DeploymentStatus.FAILED
    assert "GET /healthz answered 404" in dep.reason and "alias never moved" in dep.reason
    assert _shape(tenant) == before

"""The health check in the deploy pipeline (before traffic), the bake watch after the
alias moved, and onboarding's verify: real tenants on in-process moto, real jobs inline.

Lambda's answers for the failing apps come from botocore's Stubber on the health check's
own client (its invoke client has the check's timeout), or from the in-process test apps
(tests/health_apps.py) where a whole rollout runs.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from datetime import timedelta

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from django.core.cache import cache
from django.utils import timezone

from deployments import pipeline
from deployments.models import DeploymentStatus, Release, RolloutStatus
from deployments.releases import ReleaseInput, release_register
from deployments.rollouts import Target, rollout_advance, rollout_start
from opsconsole.aws import cloudwatch
from opsconsole.aws.clients import client
from opsconsole.jobs.models import Job, JobStep
from opsconsole.jobs.runner import job_execute
from opsconsole.sandbox.demo_release import DEMO_VERSION
from tenants import naming
from tenants.models import Tenant
from tests.deployments.test_rollout import alias_version, drive, quick
from tests.tenants.conftest import drop_tenant_databases, make_tenant, run_job

NEW = "2026.12.0-hc"

pytestmark = pytest.mark.usefixtures("fast_budget")


@pytest.fixture
def hc_dbs():
    """This file's tenant databases (tenant_hc*), apart from other test files' ones."""
    drop_tenant_databases("tenant_hc")
    yield
    drop_tenant_databases("tenant_hc")


@pytest.fixture
def fleet(seeded, hc_dbs):  # this file's own, over conftest's
    """make(n): n onboarded tenants on the demo release (the first in ring 0)."""

    def make(n: int) -> list[Tenant]:
        tenants = []
        for i in range(n):
            tenant = make_tenant(
                f"hc-{i:02d}", ring=0 if i == 0 else 1, desired_release=DEMO_VERSION
            )
            job = run_job("tenant_provision", tenant)
            assert job.status == "succeeded", job.error
            tenant.refresh_from_db()
            tenants.append(tenant)
        return tenants

    return make


def register_new(version: str = NEW):
    """A new release of the app the fleet runs, with the same migrations (moto runs no
    code: the zip's content does not matter here)."""
    demo = Release.objects.get(version=DEMO_VERSION)
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as zf:
        zf.writestr("app.py", f"VERSION = {version!r}\n")
    return release_register(
        ReleaseInput(
            version=version,
            artifact="zip",
            zip_bytes=package.getvalue(),
            runtime=demo.runtime,
            handler=demo.handler,
            migration_files=[(m.name, m.sql) for m in demo.migrations.all()],
        )
    )


def _answer(payload: dict) -> dict:
    raw = json.dumps(payload).encode()
    return {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(raw), len(raw))}


class Tokens:
    """Counts the Lambda control-plane tokens taken (the budget's only caller)."""

    def __init__(self):
        self.taken = 0

    def take(self, *, timeout_s):
        self.taken += 1


def test_a_failing_health_check_leaves_traffic_on_the_old_version(fleet, health_apps, monkeypatch):
    [tenant] = fleet(1)
    before = alias_version(tenant)
    health_apps.stop(monkeypatch)  # Lambda's answer comes from the Stubber below
    tokens = Tokens()
    monkeypatch.setattr(pipeline, "budget_for", lambda region: tokens)
    rollout = rollout_start(release=register_new(), target=Target(), strategy=quick())
    rollout_advance(rollout.pk)
    dep = rollout.deployments.get()
    name = naming.function_name(tenant.slug)
    with Stubber(client("lambda", tenant.region, read_timeout_s=5)) as stub:
        stub.add_response(
            "invoke",
            _answer({"statusCode": 500, "body": '{"error": "db down"}'}),
            {"FunctionName": name, "Qualifier": ANY, "Payload": ANY},
        )
        for _ in range(5):
            job_execute(dep.job_id, owner="test-worker")
            if Job.objects.get(pk=dep.job_id).is_finished:
                break
            Job.objects.filter(pk=dep.job_id).update(run_after=None)
        stub.assert_no_pending_responses()
    dep.refresh_from_db()
    published = JobStep.objects.get(job_id=dep.job_id, name="publish").output["function_version"]
    assert dep.status == DeploymentStatus.FAILED
    assert (
        f"Health check before traffic: version {published}: GET /healthz answered 500: "
        '{"error": "db down"}'
    ) in dep.reason
    assert f"the alias never moved: version {before} still serves every request" in dep.reason
    assert alias_version(tenant) == before
    # The code update (which published the version) took one token; the health invoke
    # (data plane) and the failure hook (nothing to revert) took none, and no alias call.
    assert tokens.taken == 1
    steps = dict(JobStep.objects.filter(job_id=dep.job_id).values_list("name", "status"))
    assert steps["traffic"] == "pending" and steps["health"] == "failed"
    tenant.refresh_from_db()
    assert tenant.current_release == tenant.desired_release == DEMO_VERSION
    # The canary's failure halts the rollout, with the app's words on the deployment row.
    rollout_advance(rollout.pk)
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.HALTED


def test_the_check_goes_to_the_published_version_before_the_alias_moves(
    fleet, health_apps, monkeypatch
):
    [tenant] = fleet(1)
    before = alias_version(tenant)
    seen = []
    real = health_apps.invoke_within

    def invoke(**kwargs):
        seen.append((kwargs["qualifier"], alias_version(tenant)))
        return real(**kwargs)

    monkeypatch.setattr(pipeline.health.lambda_, "invoke_within", invoke)
    health_apps.calls.clear()
    rollout = drive(rollout_start(release=register_new(), target=Target(), strategy=quick()))
    assert rollout.status == RolloutStatus.SUCCEEDED
    dep = rollout.deployments.get()
    [(qualifier, alias_then)] = seen
    assert qualifier == dep.to_version != before and alias_then == before
    # The app behind Mangum saw its own route.
    [call] = health_apps.calls
    assert (call.scope["method"], call.scope["path"]) == ("GET", "/healthz")
    assert call.event["version"] == "2.0"
    assert alias_version(tenant) == dep.to_version


def test_a_broken_app_halts_the_canary_in_its_own_words(
    fleet, health_apps, client_for, viewer_user
):
    tenants = fleet(3)
    canary = tenants[0]
    health_apps.break_app(naming.function_name(canary.slug), 503, '{"error": "migrations pending"}')
    rollout = drive(rollout_start(release=register_new(), target=Target(), strategy=quick()))
    words = 'GET /healthz answered 503: {"error": "migrations pending"}'
    assert rollout.status == RolloutStatus.HALTED and "canary wave" in rollout.status_reason
    assert f"First: {canary.slug}: Health check before traffic: " in rollout.status_reason
    assert words in rollout.status_reason
    dep = rollout.deployments.get(tenant=canary)
    assert words in dep.reason
    assert all(Tenant.objects.get(pk=t.pk).current_release == DEMO_VERSION for t in tenants)
    # The rollout page: the row names the failed step and carries the app's words.
    page = client_for(viewer_user).get(f"/rollouts/{rollout.pk}/").content.decode()
    row = page[page.index(f'data-tenant="{canary.slug}"') :]
    row = row[: row.index("</tr>")]
    assert "Health check before traffic" in row
    assert "GET /healthz answered 503: {&quot;error&quot;: &quot;migrations pending&quot;}" in row


# --- the bake watch --------------------------------------------------------------------


def _run_until_watching(dep) -> Job:
    for _ in range(10):
        job_execute(dep.job_id, owner="test-worker")
        verify = JobStep.objects.get(job_id=dep.job_id, name="verify")
        if verify.status == "waiting":
            return Job.objects.get(pk=dep.job_id)
        Job.objects.filter(pk=dep.job_id).update(run_after=None)
    raise AssertionError("the verify step never started watching")


def _moved(dep, seconds_ago: float) -> None:
    """Pretend the alias moved ``seconds_ago``."""
    traffic = JobStep.objects.get(job_id=dep.job_id, name="traffic")
    traffic.output = {**traffic.output, "moved_at": time.time() - seconds_ago}
    traffic.save(update_fields=["output"])
    Job.objects.filter(pk=dep.job_id).update(run_after=None)


def test_the_canary_watches_through_the_bake_then_the_next_wave_starts_at_once(fleet):
    tenants = fleet(3)
    rollout = rollout_start(release=register_new(), target=Target(), strategy=quick(bake_s=120))
    rollout_advance(rollout.pk)
    dep = rollout.deployments.get(tenant=tenants[0])
    job = _run_until_watching(dep)
    verify = job.steps.get(name="verify")
    assert "s of 120 s left" in verify.detail and job.status == "queued"
    assert job.run_after <= timezone.now() + timedelta(seconds=pipeline.WATCH_CHECK_S)
    dep.refresh_from_db()
    assert dep.status == DeploymentStatus.RUNNING
    rollout_advance(rollout.pk)
    assert rollout.deployments.filter(status=DeploymentStatus.RUNNING).count() == 1

    _moved(dep, 121)
    job_execute(dep.job_id, owner="test-worker")
    dep.refresh_from_db()
    assert dep.status == DeploymentStatus.SUCCEEDED
    # The canary's bake was its watch: no pause before the second wave.
    rollout_advance(rollout.pk)
    assert rollout.deployments.filter(wave=1, status=DeploymentStatus.RUNNING).count() == 1


def test_an_alarm_during_the_bake_fails_the_deployment_and_reverts(fleet):
    [tenant] = fleet(1)
    before = alias_version(tenant)
    rollout = rollout_start(release=register_new(), target=Target(), strategy=quick(bake_s=300))
    rollout_advance(rollout.pk)
    dep = rollout.deployments.get()
    _run_until_watching(dep)
    assert alias_version(tenant) != before
    cloudwatch.set_alarm_state(
        name=naming.alarm_name(tenant.slug, "errors"), state="ALARM", reason="test"
    )
    _moved(dep, 90)
    job_execute(dep.job_id, owner="test-worker")
    dep.refresh_from_db()
    assert dep.status == DeploymentStatus.FAILED
    assert "Watch alarms and error rate: Alarm" in dep.reason and "in ALARM 90 s after" in (
        dep.reason
    )
    assert f"alias reverted to version {before}" in dep.reason
    assert alias_version(tenant) == before


def test_an_error_rate_since_the_alias_moved_fails_the_deployment(fleet):
    [tenant] = fleet(1)
    before = alias_version(tenant)
    rollout = rollout_start(release=register_new(), target=Target(), strategy=quick(bake_s=600))
    rollout_advance(rollout.pk)
    dep = rollout.deployments.get()
    _run_until_watching(dep)
    _moved(dep, 400)
    name = naming.function_name(tenant.slug)
    dims = [
        {"Name": "FunctionName", "Value": name},
        {"Name": "Resource", "Value": f"{name}:{naming.ALIAS}"},
    ]
    now = time.time()
    # Before the move: errors of the old version do not count against the new one.
    stamps = [now - 3000, now - 240, now - 120]
    data = [
        {"MetricName": metric, "Dimensions": dims, "Timestamp": stamp, "Value": value}
        for stamp, errors, calls in zip(stamps, (500, 9, 8), (500, 40, 40), strict=True)
        for metric, value in (("Errors", errors), ("Invocations", calls))
    ]
    cloudwatch.put_metric_data(namespace="AWS/Lambda", data=data)
    cache.clear()  # a minute later: the health pages' cached numbers have expired
    job_execute(dep.job_id, owner="test-worker")
    dep.refresh_from_db()
    assert dep.status == DeploymentStatus.FAILED
    # 17 of the 80 invocations since the move failed: the status's 5% rule.
    assert "21.2% of invocations failed since the alias moved (17 of 80)" in dep.reason
    assert alias_version(tenant) == before


def test_later_waves_watch_only_what_the_setting_allows(settings):
    from deployments.models import Rollout

    rollout = Rollout(bake_s=300)
    assert rollout.watch_s(0) == 300 and rollout.pause_after_s(0) == 0
    assert rollout.watch_s(1) == 0 and rollout.pause_after_s(1) == 300
    settings.DEPLOY_WATCH_S = 60
    assert rollout.watch_s(2) == 60 and rollout.pause_after_s(2) == 240
    assert Rollout(bake_s=0).watch_s(0) == 0


# --- onboarding's verify ---------------------------------------------------------------


@pytest.fixture
def onboarding(seeded, hc_dbs):  # noqa: F811 - the fixture imported above
    return make_tenant("hc-onboard")


def test_onboarding_verifies_the_release_on_the_live_alias(onboarding, health_apps):
    job = run_job("tenant_provision", onboarding)
    assert job.status == "succeeded", job.error
    call = health_apps.calls[-1]
    assert call.qualifier == naming.ALIAS and call.scope["path"] == "/healthz"
    verify = job.steps.get(name="verify")
    assert verify.output["health"].startswith("GET /healthz answered 200")


def test_onboarding_fails_in_the_apps_words(onboarding, health_apps):
    health_apps.break_app(naming.function_name(onboarding.slug), 500, '{"error": "no table"}')
    job = run_job("tenant_provision", onboarding)
    assert job.status == "failed"
    assert 'GET /healthz answered 500: {"error": "no table"}' in job.error
    assert "live alias, release" in job.error

"""Rollouts end to end against in-process moto and real tenant databases.

Tenants are onboarded for real (the provisioning job, inline); deployments run the real
``tenant_deploy`` job inline, and the orchestrator is called the way its task would be.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from deployments import pipeline
from deployments.models import Deployment, DeploymentStatus, Rollout, RolloutStatus
from deployments.releases import ReleaseInput, release_register
from deployments.rollbacks import rollout_rollback
from deployments.rollouts import (
    RolloutRefused,
    Strategy,
    Target,
    plan_waves,
    rollout_advance,
    rollout_cancel,
    rollout_pause,
    rollout_preview,
    rollout_resume,
    rollout_retry_failed,
    rollout_start,
)
from opsconsole.aws import lambda_
from opsconsole.jobs.models import Job
from opsconsole.jobs.runner import job_execute
from opsconsole.sandbox.demo_release import DEMO_VERSION, app_files, build_zip
from tenants import naming
from tenants.models import Tenant
from tests.tenants.conftest import make_tenant, run_job

NEW = "2026.12.0"

pytestmark = pytest.mark.usefixtures("fast_budget")


def register_new(version: str = NEW, migrations=None, runtime: str = "python3.12"):
    if migrations is None:
        # The demo release's own migrations: a release never edits an applied one.
        from deployments.models import Release

        demo = Release.objects.get(version=DEMO_VERSION)
        migrations = [(m.name, m.sql) for m in demo.migrations.all()]
    return release_register(
        ReleaseInput(
            version=version,
            artifact="zip",
            zip_bytes=build_zip(app_files(version)),
            runtime=runtime,
            handler="app.handler",
            migration_files=migrations,
        )
    )


def alias_version(tenant: Tenant) -> str:
    alias = lambda_.get_alias(
        function=naming.function_name(tenant.slug), alias=naming.ALIAS, region=tenant.region
    )
    return alias["FunctionVersion"]


def live_code(tenant: Tenant) -> str:
    function = lambda_.get_function_at(
        name=naming.function_name(tenant.slug), qualifier=naming.ALIAS, region=tenant.region
    )
    return function["Configuration"]["CodeSha256"]


def run_deployments(rollout: Rollout, *, limit: int | None = None) -> int:
    """Run the queued deploy jobs inline, as workers would; returns how many ran."""
    ran = 0
    for dep in rollout.deployments.filter(status=DeploymentStatus.RUNNING).select_related("job"):
        if limit is not None and ran >= limit:
            break
        for _ in range(10):
            job_execute(dep.job_id, owner="test-worker")
            job = Job.objects.get(pk=dep.job_id)
            if job.is_finished:
                break
            Job.objects.filter(pk=job.pk).update(run_after=None)
        ran += 1
    return ran


def drive(rollout: Rollout, *, rounds: int = 30) -> Rollout:
    for _ in range(rounds):
        rollout_advance(rollout.pk)
        rollout.refresh_from_db()
        if rollout.status != RolloutStatus.RUNNING:
            return rollout
        if not run_deployments(rollout):
            rollout_advance(rollout.pk)
            rollout.refresh_from_db()
            if not rollout.deployments.filter(status=DeploymentStatus.RUNNING).exists():
                return rollout
    return rollout


def quick(**changes) -> Strategy:
    return Strategy(**{"max_parallel": 10, "bake_s": 0, **changes})


def test_waves_canary_then_ten_percent_then_the_rest(db):
    tenants = [Tenant(slug=f"x{i}", ring=0 if i < 1 else 1) for i in range(20)]
    waves = plan_waves(tenants)
    assert [len(w) for w in waves] == [1, 2, 17]
    no_ring0 = [Tenant(slug=f"y{i}", ring=1) for i in range(5)]
    assert [len(w) for w in plan_waves(no_ring0)] == [1, 1, 3]


def test_the_estimate_counts_a_configuration_update_only_where_the_release_changes_it(db):
    from deployments.models import Release

    Release.objects.create(version="r1", artifact_type="zip", runtime="python3.12", handler="h")
    same = Release.objects.create(
        version="r2", artifact_type="zip", runtime="python3.12", handler="h"
    )
    other = Release.objects.create(
        version="r3", artifact_type="zip", runtime="python3.13", handler="h"
    )
    for i in range(10):
        make_tenant(f"t5-e{i}", ring=1, status="active", current_release="r1")
    strategy = quick(max_parallel=10)
    plain = rollout_preview(same, Target(), strategy)
    changed = rollout_preview(other, Target(), strategy)
    # 2 control-plane calls a tenant (code published with the update, alias), 3 where the
    # runtime changes.
    assert (plain.calls, changed.calls) == (20, 30)
    assert plain.rate_bound_s == math.ceil(20 / settings.LAMBDA_CONTROL_RATE)
    assert changed.rate_bound_s == math.ceil(30 / settings.LAMBDA_CONTROL_RATE)
    assert changed.chain_s > plain.chain_s


def test_the_fleet_model_is_bound_by_the_budget_at_the_default_max_parallel():
    """1,000 tenants at 10/s: 2,000 calls need 200 s; the default max parallel keeps the
    simulated rollout within 5 % of that bound (bake aside), while 10 slots do not."""
    from deployments import fleet_model

    waves = [1, 100, 899]
    common = {"waves": waves, "rate": 10.0, "burst": 5.0, "watch_s": [0, 0, 0], "bake_s": 0}
    default = fleet_model.default_max_parallel(rate=10.0)
    fast = fleet_model.estimate(max_parallel=default, **common)
    slow = fleet_model.estimate(max_parallel=10, **common)
    assert fast.calls == 2000 and fast.rate_s == 200
    assert fast.rate_s <= fast.wall_s <= fast.bound_s * 1.05  # the budget holds it back
    assert slow.wall_s > fast.bound_s * 1.5  # the slots, not the budget, bound it
    # At a budget no tenant's chain can use, the chain is the bound.
    alone = fleet_model.estimate(waves=[1], rate=1e9, burst=1, max_parallel=1)
    assert alone.wall_s == pytest.approx(alone.chain_s)


@pytest.mark.long  # a long scenario: `make faults` runs it, `make test` does not
def test_twenty_tenants_halt_on_a_second_wave_failure(fleet, health_apps):
    tenants = fleet(20)
    old_versions = {t.slug: alias_version(t) for t in tenants}
    release = register_new()
    preview = rollout_preview(release, Target(), quick())
    assert [len(w) for w in preview.waves] == [1, 2, 17]
    assert preview.estimate_s >= preview.chain_s > 0

    doomed = preview.waves[1][1]
    # The doomed tenant's app answers its health route with a 500.
    health_apps.break_app(naming.function_name(doomed), 500, '{"error": "injected failure"}')
    rollout = drive(rollout_start(release=release, target=Target(), strategy=quick()))

    assert rollout.status == RolloutStatus.HALTED
    assert "wave 2: 1 of 2 failed" in rollout.status_reason
    by_slug = {d.tenant.slug: d for d in rollout.deployments.select_related("tenant")}
    failed = by_slug[doomed]
    assert failed.status == DeploymentStatus.FAILED
    assert 'answered 500: {"error": "injected failure"}' in failed.reason
    assert "the alias never moved" in failed.reason
    # The failed tenant's alias is back on its old version, and it still runs the old release.
    doomed_tenant = Tenant.objects.get(slug=doomed)
    assert alias_version(doomed_tenant) == old_versions[doomed]
    assert doomed_tenant.current_release == DEMO_VERSION
    assert doomed_tenant.desired_release == DEMO_VERSION
    # Canary and the healthy second-wave tenant moved; the third wave was never touched.
    for slug in (preview.waves[0][0], preview.waves[1][0]):
        tenant = Tenant.objects.get(slug=slug)
        assert tenant.current_release == NEW
        assert alias_version(tenant) != old_versions[slug]
    for slug in preview.waves[2]:
        assert by_slug[slug].status == DeploymentStatus.PENDING
        assert by_slug[slug].job_id is None
        assert alias_version(Tenant.objects.get(slug=slug)) == old_versions[slug]
        assert Tenant.objects.get(slug=slug).current_release == DEMO_VERSION

    # Retry failed (the fault is gone): the rollout goes on and finishes.
    health_apps.broken.clear()
    assert rollout_retry_failed(rollout) == 1
    rollout = drive(rollout)
    assert rollout.status == RolloutStatus.SUCCEEDED
    assert set(
        Tenant.objects.filter(slug__startswith="t5-").values_list("current_release", flat=True)
    ) == {NEW}


def test_canary_failure_halts_at_once(fleet, health_apps):
    tenants = fleet(3)
    release = register_new()
    for tenant in tenants:
        health_apps.break_app(naming.function_name(tenant.slug), 503, "canary broken")
    rollout = drive(rollout_start(release=release, target=Target(), strategy=quick()))
    assert rollout.status == RolloutStatus.HALTED
    assert "canary wave" in rollout.status_reason
    assert rollout.deployments.filter(status=DeploymentStatus.PENDING).count() == 2
    assert all(Tenant.objects.get(pk=t.pk).current_release == DEMO_VERSION for t in tenants)


def test_pause_and_resume(fleet):
    fleet(4)
    release = register_new()
    rollout = rollout_start(release=release, target=Target(), strategy=quick())
    rollout_advance(rollout.pk)
    assert rollout.deployments.filter(status=DeploymentStatus.RUNNING).count() == 1  # canary
    assert rollout_pause(rollout)
    run_deployments(rollout)
    rollout_advance(rollout.pk)
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.PAUSED
    # Paused: the canary finished, nothing new started.
    assert rollout.deployments.filter(status=DeploymentStatus.SUCCEEDED).count() == 1
    assert rollout.deployments.filter(status=DeploymentStatus.PENDING).count() == 3
    assert rollout_resume(rollout)
    rollout = drive(rollout)
    assert rollout.status == RolloutStatus.SUCCEEDED
    assert rollout.deployments.filter(status=DeploymentStatus.SUCCEEDED).count() == 4


def test_cancel_lets_in_flight_finish_and_starts_nothing(fleet):
    fleet(4)
    release = register_new()
    rollout = rollout_start(release=release, target=Target(), strategy=quick())
    rollout_advance(rollout.pk)
    assert rollout_cancel(rollout)
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.CANCELLING
    run_deployments(rollout)
    rollout_advance(rollout.pk)
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.CANCELLED
    counts = {s: rollout.deployments.filter(status=s).count() for s in DeploymentStatus.values}
    assert counts[DeploymentStatus.SUCCEEDED] == 1
    assert counts[DeploymentStatus.CANCELLED] == 3
    assert Tenant.objects.filter(current_release=NEW).count() == 1


def test_roll_back_puts_the_previous_release_back(fleet):
    tenants = fleet(3)
    old_versions = {t.slug: alias_version(t) for t in tenants}
    old_code = {t.slug: live_code(t) for t in tenants}
    release = register_new()
    rollout = drive(rollout_start(release=release, target=Target(), strategy=quick()))
    assert rollout.status == RolloutStatus.SUCCEEDED
    assert all(alias_version(t) != old_versions[t.slug] for t in tenants)
    assert all(live_code(t) != old_code[t.slug] for t in tenants)

    [back] = rollout_rollback(rollout)
    assert back.release.version == DEMO_VERSION and back.rollback_of == rollout
    back = drive(back)
    assert back.status == RolloutStatus.SUCCEEDED
    for tenant in tenants:
        tenant.refresh_from_db()
        assert tenant.current_release == DEMO_VERSION
        function = lambda_.get_function_at(
            name=naming.function_name(tenant.slug), qualifier=naming.ALIAS, region=tenant.region
        )
        # The alias serves the demo release's code again (moved back to the version that
        # held it: tests/deployments/test_alias_rollback.py).
        assert function["Configuration"]["CodeSha256"] == old_code[tenant.slug]


def test_downgrade_needs_confirmation_and_busy_tenants_wait(fleet):
    fleet(2)
    release = register_new()
    drive(rollout_start(release=release, target=Target(), strategy=quick()))
    demo = type(release).objects.get(version=DEMO_VERSION)
    target = Target(kind="tenants", values=["t5-00"])
    with pytest.raises(RolloutRefused, match="confirm the downgrade"):
        rollout_start(release=demo, target=target, strategy=quick())
    first = rollout_start(release=demo, target=target, strategy=quick(), confirm_downgrade=True)
    rollout_advance(first.pk)
    # A second rollout for the same tenant, to skip it: it says which rollout holds it.
    second = rollout_start(
        release=demo,
        target=Target(kind="tenants", values=["t5-00"], on_conflict="skip"),
        strategy=quick(),
        confirm_downgrade=True,
    )
    dep = second.deployments.get()
    assert dep.status == DeploymentStatus.SKIPPED and dep.reason == f"in rollout #{first.pk}"


def test_a_tenant_onboarded_during_a_rollout_gets_the_new_release(fleet):
    fleet(2)
    release = register_new()
    rollout = rollout_start(release=release, target=Target(), strategy=quick())
    rollout_advance(rollout.pk)
    # A newer release registered meanwhile is not what the fleet is moving to.
    register_new("2026.12.5")
    late = make_tenant("t5-late")
    assert run_job("tenant_provision", late).status == "succeeded"
    late.refresh_from_db()
    assert late.current_release == NEW
    assert not Deployment.objects.filter(tenant=late).exists()
    assert settings.SANDBOX


def test_canary_on_the_alias_aborts_on_an_alarm(fleet):
    from opsconsole.aws import cloudwatch

    [tenant] = fleet(1)
    old = alias_version(tenant)
    release = register_new()
    rollout = rollout_start(
        release=release,
        target=Target(),
        strategy=quick(traffic="canary", canary_percent=10, canary_minutes=5),
    )
    rollout_advance(rollout.pk)
    dep = rollout.deployments.get()
    for _ in range(6):
        job_execute(dep.job_id, owner="test-worker")
        Job.objects.filter(pk=dep.job_id).update(run_after=None)
    dep.refresh_from_db()
    assert dep.status == DeploymentStatus.RUNNING and dep.canary_started_at is not None
    alias = lambda_.get_alias(
        function=naming.function_name(tenant.slug), alias=naming.ALIAS, region=tenant.region
    )
    # 10% of the traffic on the new version, the rest still on the old one.
    assert alias["FunctionVersion"] == old
    assert alias["RoutingConfig"]["AdditionalVersionWeights"] == {dep.to_version: 0.1}

    cloudwatch.set_alarm_state(
        name=naming.alarm_name(tenant.slug, "errors"), state="ALARM", reason="test"
    )
    job_execute(dep.job_id, owner="test-worker")
    dep.refresh_from_db()
    assert dep.status == DeploymentStatus.FAILED and "Canary aborted" in dep.reason
    alias = lambda_.get_alias(
        function=naming.function_name(tenant.slug), alias=naming.ALIAS, region=tenant.region
    )
    assert alias["FunctionVersion"] == old
    assert not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")
    rollout_advance(rollout.pk)
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.HALTED


@pytest.mark.parametrize(
    ("runtime", "per_tenant"),
    [
        # The code update publishes the version; then the alias: a release that keeps the
        # function's settings changes no configuration.
        ("python3.12", 2),
        # A release on another runtime changes the configuration too: one more call.
        ("python3.13", 3),
    ],
)
def test_each_tenant_takes_a_token_per_control_plane_call(fleet, monkeypatch, runtime, per_tenant):
    """Counted twice: the tokens the steps take, and the control-plane requests botocore
    really sends (every Lambda operation but GetFunction, GetPolicy and Invoke, which
    have their own limits), so a call made without its token shows as a mismatch."""
    from opsconsole.aws.clients import client

    tenants = fleet(2)
    taken, sent = [], []
    free = {"GetFunction", "GetPolicy", "Invoke"}

    class Recorder:
        def take(self, *, timeout_s):
            taken.append(timeout_s)

    def on_call(model, **kwargs):
        if model.name not in free:
            sent.append(model.name)

    monkeypatch.setattr(pipeline, "budget_for", lambda region: Recorder())
    release = register_new(runtime=runtime)
    events = client("lambda").meta.events
    events.register("before-call.lambda", on_call, unique_id="count-control-calls")
    try:
        rollout = drive(rollout_start(release=release, target=Target(), strategy=quick()))
    finally:
        events.unregister("before-call.lambda", unique_id="count-control-calls")
    assert rollout.status == RolloutStatus.SUCCEEDED
    assert len(taken) == 2 * per_tenant
    assert len(sent) == 2 * per_tenant, sent
    assert sent.count("PublishVersion") == 0  # published by UpdateFunctionCode itself
    for tenant in tenants:
        function = lambda_.get_function(name=naming.function_name(tenant.slug))
        assert function["Configuration"]["Runtime"] == runtime
        live = lambda_.get_function_at(name=naming.function_name(tenant.slug), qualifier="live")
        assert live["Configuration"]["CodeSha256"] == function["Configuration"]["CodeSha256"]


def _code_step(tenant: Tenant, release):
    """The started deployment's job (run up to the code step) and that step."""
    rollout = rollout_start(release=release, target=Target(), strategy=quick())
    rollout_advance(rollout.pk)
    dep = rollout.deployments.get(tenant=tenant)
    job = Job.objects.get(pk=dep.job_id)
    step = job.steps.get(name="code")
    step.started_at = timezone.now()
    return job, step


def _stubbed_function(tenant: Tenant, release, **configuration) -> dict:
    """GetFunction's answer: the function already as the release wants it, but its code."""
    from deployments.tenant_release import release_artifact
    from tenants.provisioning import function as fn

    wanted = fn.desired_configuration(tenant, release_artifact(release))
    wanted["VpcConfig"]["VpcId"] = "vpc-1"
    return {
        "Configuration": {
            "FunctionName": naming.function_name(tenant.slug),
            "CodeSha256": "b2xkLWNvZGU=",
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "RevisionId": "rev-0",
            **wanted,
            **configuration,
        },
        "Code": {},
    }


def release_sha(release) -> str:
    from deployments.tenant_release import release_artifact

    return release_artifact(release).code_sha256


def _live_answer(name: str) -> tuple[dict, dict]:
    """GetFunction of the ``live`` alias (the version to go back to): answer, parameters."""
    return (
        {"Configuration": {"FunctionName": name, "Version": "1"}},
        {"FunctionName": name, "Qualifier": "live"},
    )


def test_the_code_update_publishes_its_version_and_the_version_step_waits_for_it(fleet):
    """UpdateFunctionCode with Publish and the RevisionId just read answers the new version
    while Lambda still applies it: the code step records it without waiting (the
    migrations run meanwhile) and the version step gives its worker back until the
    version is ready, on GetFunction alone."""
    from botocore.stub import ANY, Stubber

    from opsconsole.aws.clients import client
    from opsconsole.jobs.registry import StepWait

    [tenant] = fleet(1)
    release = register_new()
    job, step = _code_step(tenant, release)
    name = naming.function_name(tenant.slug)
    current = _stubbed_function(tenant, release, RevisionId="rev-1")
    sha = release_sha(release)
    with Stubber(client("lambda")) as stub:
        stub.add_response("get_function", current, {"FunctionName": name})
        stub.add_response("get_function", *_live_answer(name))
        stub.add_response(
            "update_function_code",
            {
                "FunctionName": name,
                "Version": "7",
                "CodeSha256": sha,
                "Architectures": ["x86_64"],
                "LastUpdateStatus": "InProgress",
                "State": "Active",
            },
            {
                "FunctionName": name,
                "S3Bucket": ANY,
                "S3Key": ANY,
                "Architectures": ["x86_64"],
                "Publish": True,
                "RevisionId": "rev-1",
            },
        )
        out = pipeline.step_code(job, step)
        stub.assert_no_pending_responses()
    assert out["function_version"] == "7" and out["from_version"] == "1"
    job.steps.filter(name="code").update(output=out)
    version = {
        "Configuration": {
            "FunctionName": name,
            "Version": "7",
            "CodeSha256": sha,
            "Architectures": ["x86_64"],
            "State": "Active",
            "LastUpdateStatus": "InProgress",
        },
        "Code": {},
    }
    with Stubber(client("lambda")) as stub:
        stub.add_response("get_function", version, {"FunctionName": name, "Qualifier": "7"})
        with pytest.raises(StepWait, match="waiting for Lambda to finish the update"):
            pipeline.step_publish(job, job.steps.get(name="publish"))
        stub.assert_no_pending_responses()


def test_an_update_answering_other_code_fails_the_step(fleet):
    """The published version's CodeSha256 is checked from the update's answer: a version
    with other code (someone else's update slipped in) never reaches the alias."""
    from botocore.stub import ANY, Stubber

    from opsconsole.aws.clients import client

    [tenant] = fleet(1)
    release = register_new()
    job, step = _code_step(tenant, release)
    name = naming.function_name(tenant.slug)
    with Stubber(client("lambda")) as stub:
        stub.add_response(
            "get_function", _stubbed_function(tenant, release), {"FunctionName": name}
        )
        stub.add_response("get_function", *_live_answer(name))
        stub.add_response(
            "update_function_code",
            {"FunctionName": name, "Version": "7", "CodeSha256": "c29tZW9uZS1lbHNl"},
            {
                "FunctionName": name,
                "S3Bucket": ANY,
                "S3Key": ANY,
                "Architectures": ANY,
                "Publish": True,
                "RevisionId": ANY,
            },
        )
        with pytest.raises(RuntimeError, match="version 7 does not hold the release's code"):
            pipeline.step_code(job, step)


def test_a_function_changed_since_it_was_read_is_read_again(fleet):
    """RevisionId really guards the update: the local AWS refuses a stale one
    (PreconditionFailedException) and the step reads the function again."""
    from opsconsole.aws.errors import AwsError
    from opsconsole.jobs.registry import StepWait

    [tenant] = fleet(1)
    name = naming.function_name(tenant.slug)
    current = lambda_.get_function(name=name)["Configuration"]["RevisionId"]
    lambda_.update_configuration(name=name, changes={"Description": "changed by hand"})
    with pytest.raises(AwsError) as refused:
        lambda_.update_code(name=name, code={"ZipFile": b"x"}, publish=True, revision_id=current)
    assert refused.value.code == "PreconditionFailedException"
    with pytest.raises(StepWait, match="changed since it was read"):
        pipeline.control_call(
            "us-east-1",
            lambda_.update_code,
            name=name,
            code={"ZipFile": b"x"},
            publish=True,
            revision_id=current,
        )


def test_a_code_update_that_failed_fails_the_step_with_lambdas_reason(fleet):
    from botocore.stub import Stubber

    from opsconsole.aws.clients import client

    [tenant] = fleet(1)
    release = register_new()
    job, step = _code_step(tenant, release)
    name = naming.function_name(tenant.slug)
    after_start = (step.started_at + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    failed = _stubbed_function(
        tenant,
        release,
        LastUpdateStatus="Failed",
        LastUpdateStatusReason="Code storage limit exceeded.",
        LastModified=after_start,
    )
    with Stubber(client("lambda")) as stub:
        stub.add_response("get_function", failed, {"FunctionName": name})
        with pytest.raises(RuntimeError, match="Code storage limit exceeded"):
            pipeline.step_code(job, step)


def test_an_older_failed_update_is_overwritten_not_blamed_on_this_deployment(fleet):
    from botocore.stub import ANY, Stubber

    from opsconsole.aws.clients import client

    [tenant] = fleet(1)
    release = register_new()
    job, step = _code_step(tenant, release)
    name = naming.function_name(tenant.slug)
    before_start = (step.started_at - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    old_failure = _stubbed_function(
        tenant, release, LastUpdateStatus="Failed", LastModified=before_start
    )
    with Stubber(client("lambda")) as stub:
        stub.add_response("get_function", old_failure, {"FunctionName": name})
        stub.add_response("get_function", *_live_answer(name))
        stub.add_response(
            "update_function_code",
            {
                "FunctionName": name,
                "Version": "7",
                "CodeSha256": release_sha(release),
                "Architectures": ["x86_64"],
                "LastUpdateStatus": "InProgress",
            },
            {
                "FunctionName": name,
                "S3Bucket": ANY,
                "S3Key": ANY,
                "Architectures": ["x86_64"],
                "Publish": True,
                "RevisionId": ANY,
            },
        )
        assert pipeline.step_code(job, step)["function_version"] == "7"
        stub.assert_no_pending_responses()


def _throttled_once(monkeypatch, name: str, operation: str) -> dict:
    """Make ``lambda_.<name>`` answer TooManyRequestsException the first time."""
    from opsconsole.aws.errors import AwsError

    real = getattr(lambda_, name)
    calls = {"n": 0}

    def call(**kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise AwsError(
                "Rate exceeded",
                code="TooManyRequestsException",
                operation=operation,
                permanent=False,
            )
        return real(**kwargs)

    monkeypatch.setattr(lambda_, name, call)
    return calls


def test_a_throttle_that_gets_through_requeues_the_step_not_the_deployment(fleet, monkeypatch):
    [tenant] = fleet(1)
    calls = _throttled_once(monkeypatch, "update_code", "UpdateFunctionCode")
    rollout = drive(rollout_start(release=register_new(), target=Target(), strategy=quick()))
    assert rollout.status == RolloutStatus.SUCCEEDED
    assert rollout.deployments.get().status == DeploymentStatus.SUCCEEDED
    assert calls["n"] == 2  # the step ran again after the throttle
    tenant.refresh_from_db()
    assert tenant.current_release == NEW


def test_the_revert_tries_a_throttled_alias_call_again(fleet, monkeypatch):
    from opsconsole.aws import cloudwatch

    [tenant] = fleet(1)
    before = alias_version(tenant)
    # The alarm fires: the verify step fails once the alias has moved, so it goes back.
    cloudwatch.set_alarm_state(
        name=naming.alarm_name(tenant.slug, "errors"), state="ALARM", reason="test"
    )
    monkeypatch.setattr(pipeline.time, "sleep", lambda s: None)
    calls = _throttled_once(monkeypatch, "get_alias", "GetAlias")
    rollout = drive(rollout_start(release=register_new(), target=Target(), strategy=quick()))
    dep = rollout.deployments.get()
    assert dep.status == DeploymentStatus.FAILED
    assert "alias reverted to version" in dep.reason and calls["n"] == 2
    assert alias_version(tenant) == before

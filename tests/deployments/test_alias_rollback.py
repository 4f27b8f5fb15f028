"""Roll back by moving aliases: one control call per tenant, redeploy where it cannot.

In-process moto and real tenant databases, the jobs run inline (tests/deployments/
test_rollout.py's helpers)."""

from __future__ import annotations

import pytest

from deployments import pipeline
from deployments.models import (
    Deployment,
    DeploymentStatus,
    Release,
    RolloutMethod,
    RolloutStatus,
    TenantSchema,
)
from deployments.rollbacks import rollout_rollback
from deployments.rollouts import RolloutRefused, Target, rollout_start
from opsconsole.aws.clients import client
from opsconsole.jobs.models import Job
from opsconsole.sandbox.demo_release import DEMO_VERSION
from tenants import naming
from tenants.drift import tenant_drift
from tests.deployments.test_rollout import (
    alias_version,
    drive,
    live_code,
    quick,
    register_new,
)

pytestmark = pytest.mark.usefixtures("fast_budget")

FREE = {"GetFunction", "GetPolicy", "Invoke"}


@pytest.fixture
def control_calls():
    """The Lambda control-plane operations botocore really sends, in order."""
    sent: list[str] = []

    def on_call(model, **kwargs):
        if model.name not in FREE:
            sent.append(model.name)

    events = client("lambda").meta.events
    events.register("before-call.lambda", on_call, unique_id="alias-back-calls")
    yield sent
    events.unregister("before-call.lambda", unique_id="alias-back-calls")


def _deployed(fleet, n: int):
    tenants = fleet(n)
    before = {t.slug: (alias_version(t), live_code(t)) for t in tenants}
    demo = Release.objects.get(version=DEMO_VERSION)
    # The new release adds a column (expand): the old code lives with it.
    migrations = [(m.name, m.sql) for m in demo.migrations.all()] + [
        ("0002_notes_tag.sql", "ALTER TABLE notes ADD COLUMN tag text;")
    ]
    release = register_new(migrations=migrations)
    rollout = drive(rollout_start(release=release, target=Target(), strategy=quick()))
    assert rollout.status == RolloutStatus.SUCCEEDED
    assert all(alias_version(t) != before[t.slug][0] for t in tenants)
    return tenants, before, rollout


def test_roll_back_moves_each_alias_back_with_one_call(fleet, control_calls):
    tenants, before, rollout = _deployed(fleet, 3)
    schema = set(TenantSchema.objects.values_list("tenant__slug", "version"))
    assert {version for _slug, version in schema} == {2}
    control_calls.clear()

    [back] = rollout_rollback(rollout)
    assert back.method == RolloutMethod.ALIAS
    back = drive(back)
    assert back.status == RolloutStatus.SUCCEEDED
    # One UpdateAlias per tenant, nothing else of the 15/s budget: no code, no publish.
    assert control_calls == ["UpdateAlias"] * 3
    for tenant in tenants:
        tenant.refresh_from_db()
        assert tenant.current_release == DEMO_VERSION == tenant.desired_release
        # The very version it ran before, not a new one of the same code.
        assert (alias_version(tenant), live_code(tenant)) == before[tenant.slug]
    # The migrations stay applied, as recorded.
    assert set(TenantSchema.objects.values_list("tenant__slug", "version")) == schema
    rows = back.deployments.order_by("tenant__slug")
    assert [(d.from_version, d.to_version) for d in rows] == [
        (Deployment.objects.get(rollout=rollout, tenant=d.tenant).to_version, before[s][0])
        for d, s in zip(rows, sorted(before), strict=True)
    ]
    job = Job.objects.get(pk=rows[0].job_id)
    outputs = dict(job.steps.values_list("name", "output"))
    assert outputs["code"] == {"skipped": "the alias moved back: nothing to redeploy"}
    # $LATEST still holds the newer release: that is where a roll back leaves it, not
    # drift. An edit to $LATEST after that is.
    for tenant in tenants:
        assert tenant_drift(tenant) == [], tenant.slug
    name = naming.function_name(tenants[0].slug)
    client("lambda").update_function_configuration(FunctionName=name, MemorySize=1024)
    assert [(d.field, d.actual) for d in tenant_drift(tenants[0])] == [("MemorySize", 1024)]


def test_a_gone_version_falls_back_to_a_redeploy(fleet, control_calls):
    tenants, before, rollout = _deployed(fleet, 2)
    gone = tenants[1]
    client("lambda").delete_function(
        FunctionName=naming.function_name(gone.slug), Qualifier=before[gone.slug][0]
    )
    control_calls.clear()
    [back] = rollout_rollback(rollout)
    back = drive(back)
    sent = list(control_calls)  # before this test's own GetAlias calls
    assert back.status == RolloutStatus.SUCCEEDED, [d.reason for d in back.deployments.all()]
    assert alias_version(tenants[0]) == before[tenants[0].slug][0]
    # The gone one runs the demo release's code again, as a newly published version.
    assert live_code(gone) == before[gone.slug][1]
    assert alias_version(gone) != before[gone.slug][0]
    job = Job.objects.get(pk=back.deployments.get(tenant=gone).job_id)
    check = job.steps.get(name="back_check").output
    assert check["fallback"] == f"version {before[gone.slug][0]} no longer exists"
    # The moved-back tenant: 1 call; the redeployed one: its code update and its alias.
    assert sorted(sent) == ["UpdateAlias", "UpdateAlias", "UpdateFunctionCode"]


def test_an_alias_moved_since_is_redeployed_not_moved_back(fleet):
    """Something else moved the alias after the rollout (a repair publishing the
    environment anew): the old version may carry stale settings, so the tenant is
    redeployed rather than sent back to it."""
    tenants, before, rollout = _deployed(fleet, 1)
    [tenant] = tenants
    name = naming.function_name(tenant.slug)
    aws = client("lambda")
    aws.update_function_configuration(FunctionName=name, Description="repaired")
    other = aws.publish_version(FunctionName=name)
    aws.update_alias(FunctionName=name, Name=naming.ALIAS, FunctionVersion=other["Version"])
    [back] = rollout_rollback(rollout)
    back = drive(back)
    assert back.status == RolloutStatus.SUCCEEDED
    job = Job.objects.get(pk=back.deployments.get().job_id)
    assert "did not put there" in job.steps.get(name="back_check").output["fallback"]
    assert live_code(tenant) == before[tenant.slug][1]
    assert alias_version(tenant) not in {before[tenant.slug][0], other["Version"]}


def test_a_failing_health_check_leaves_the_alias_where_it_is(fleet, monkeypatch):
    tenants, before, rollout = _deployed(fleet, 1)
    [tenant] = tenants
    serving = alias_version(tenant)

    def unhealthy(tenant, *, spec, qualifier):
        from tenants.provisioning.health_check import HealthAnswer

        return HealthAnswer(healthy=False, retryable=False, message="500 from GET /health")

    monkeypatch.setattr(pipeline, "health_check", unhealthy)
    [back] = rollout_rollback(rollout)
    back = drive(back)
    dep = back.deployments.get()
    assert dep.status == DeploymentStatus.FAILED
    assert "fails its health check on today's schema: 500 from GET /health" in dep.reason
    assert f"the alias still serves version {serving}" in dep.reason
    assert alias_version(tenant) == serving
    tenant.refresh_from_db()
    assert tenant.current_release != DEMO_VERSION


def test_redeploy_stays_available(fleet, control_calls):
    tenants, before, rollout = _deployed(fleet, 1)
    control_calls.clear()
    [back] = rollout_rollback(rollout, method="redeploy")
    assert back.method == RolloutMethod.DEPLOY
    back = drive(back)
    assert back.status == RolloutStatus.SUCCEEDED
    assert "UpdateFunctionCode" in control_calls
    assert live_code(tenants[0]) == before[tenants[0].slug][1]
    with pytest.raises(RolloutRefused, match="alias or redeploy"):
        rollout_rollback(rollout, method="sideways")


def test_the_model_rolls_back_a_thousand_tenants_at_the_budget():
    """1,000 aliases back at 10/s: 1,000 calls, 100 s; the rollback's waves (canary, 10 %,
    the rest, no bake) at the default max parallel stay within 1.1x of that."""
    from deployments import fleet_model

    chain = fleet_model.Chain(alias_back=True)
    back = fleet_model.estimate(
        waves=[1, 100, 899],
        rate=10.0,
        burst=5.0,
        max_parallel=fleet_model.default_max_parallel(rate=10.0),
        chain=chain,
        kick_s=1.0,
    )
    assert back.calls == 1000 and back.rate_s == 100
    assert back.rate_s <= back.wall_s <= back.rate_s * 1.1
    redeploy = fleet_model.estimate(
        waves=[1, 100, 899],
        rate=10.0,
        burst=5.0,
        max_parallel=fleet_model.default_max_parallel(rate=10.0),
        kick_s=1.0,
    )
    assert redeploy.wall_s > 1.9 * back.wall_s

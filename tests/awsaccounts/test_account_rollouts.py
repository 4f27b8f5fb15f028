"""A rollout over several AWS accounts: each account and region gets its own slots, so
every account's share advances at once, each at its own budget."""

from __future__ import annotations

import pytest

from deployments import rollouts
from deployments.models import DeploymentStatus, Release
from deployments.rollouts import Strategy, Target, rollout_advance, rollout_start
from tenants.models import Tenant, TenantStatus


@pytest.fixture
def release(db):
    Release.objects.create(version="r0", artifact_type="zip", runtime="python3.12")
    return Release.objects.create(version="r1", artifact_type="zip", runtime="python3.12")


def _tenants(account, prefix: str, n: int, *, ring: int = 1) -> list[Tenant]:
    return [
        Tenant.objects.create(
            name=f"{prefix}{i}",
            slug=f"{prefix}{i}",
            region="us-east-1",
            status=TenantStatus.ACTIVE,
            current_release="r0",
            ring=ring,
            aws_account=account,
        )
        for i in range(n)
    ]


def _running(rollout) -> dict:
    counts: dict = {}
    for dep in rollout.deployments.filter(status=DeploymentStatus.RUNNING).select_related(
        "tenant__aws_account"
    ):
        name = dep.tenant.aws_account.name if dep.tenant.aws_account else "default"
        counts[name] = counts.get(name, 0) + 1
    return counts


def test_each_account_gets_its_own_slots(
    release, second_account, third_account, monkeypatch, django_assert_max_num_queries
):
    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)
    # All ring 0: one wave, so only the slots decide what starts.
    for account, prefix in ((None, "ca-"), (second_account, "cb-"), (third_account, "cc-")):
        _tenants(account, prefix, 5, ring=0)
    rollout = rollout_start(
        release=release, target=Target(), strategy=Strategy(max_parallel=2, bake_s=0)
    )
    assert rollout.wave_sizes[0] == 15
    rollout_advance(rollout.pk)
    assert _running(rollout) == {"default": 2, "cell-2": 2, "cell-3": 2}
    # A finished deployment frees its own account's slot, not another's.
    done = rollout.deployments.filter(
        status=DeploymentStatus.RUNNING, tenant__aws_account=second_account
    ).first()
    done.status = DeploymentStatus.SUCCEEDED
    done.save()
    with django_assert_max_num_queries(40):
        rollout_advance(rollout.pk)
    assert _running(rollout) == {"default": 2, "cell-2": 2, "cell-3": 2}
    assert (
        rollout.deployments.filter(tenant__aws_account=second_account)
        .exclude(status=DeploymentStatus.PENDING)
        .count()
        == 3
    )


def test_the_preview_estimates_the_busiest_account(release, second_account):
    _tenants(None, "pa-", 40)
    _tenants(second_account, "pb-", 10)
    strategy = Strategy(max_parallel=49, bake_s=0)
    both = rollouts.rollout_preview(release, Target(), strategy)
    alone = rollouts.rollout_preview(
        release, Target(kind="tenants", values=[f"pa-{i}" for i in range(40)]), strategy
    )
    # 100 calls in all, but the accounts' budgets work side by side: the 40 tenants of
    # the console's own account take as long as they would alone.
    assert both.calls == 100 and alone.calls == 80
    assert both.rate_bound_s == alone.rate_bound_s == 8
    assert abs(both.estimate_s - alone.estimate_s) <= 2

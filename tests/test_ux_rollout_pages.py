"""The rollout page in people's words (issue 16): a bake reads as baking, with the time
left; durations rounded; release names where a person reads them; why a tenant is in its
wave (the rule of rollouts.plan_waves)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from deployments import rollouts
from deployments.models import Deployment, DeploymentStatus, Release, Rollout, RolloutStatus
from opsconsole.core.humanize import duration_text
from opsconsole.jobs.models import JobStep, StepStatus
from tenants.models import Tenant, TenantStatus

NEW = "2026.12.0"
OLD = "2026.11.0"


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)


@pytest.fixture
def release(db):
    Release.objects.create(version=OLD, artifact_type="zip")
    return Release.objects.create(version=NEW, artifact_type="zip")


def _tenants(rings: list[int]) -> list[Tenant]:
    return [
        Tenant.objects.create(
            name=f"HE {i}",
            slug=f"he-ux-{i}",
            region="us-east-1",
            ring=ring,
            status=TenantStatus.ACTIVE,
            current_release=OLD,
        )
        for i, ring in enumerate(rings)
    ]


def _start(release: Release, tenants: list[Tenant], *, bake_s: int = 300) -> Rollout:
    return rollouts.rollout_start(
        release=release,
        target=rollouts.Target(kind="tenants", values=[t.slug for t in tenants]),
        strategy=rollouts.Strategy(max_parallel=10, bake_s=bake_s),
    )


def _live(client, rollout: Rollout) -> str:
    response = client.get(f"/rollouts/{rollout.pk}/live/")
    assert response.status_code in (200, 286)
    return response.content.decode()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.355978, "0.4 s"),
        (4, "4 s"),
        (55.355978, "55 s"),
        (192, "3 min 12 s"),
        (180, "3 min"),
        (3600 + 300 + 9, "1 h 5 min"),
        (2 * 86400 + 3 * 3600, "2 d 3 h"),
    ],
)
def test_durations_are_rounded_for_people(seconds, text):
    assert duration_text(seconds) == text
    assert duration_text(timedelta(seconds=seconds)) == text


def test_canary_watch_reads_as_baking_with_the_time_left(client_for, viewer_user, release):
    tenants = _tenants([1, 0, 1, 1, 1])
    rollout = _start(release, tenants)
    rollouts.rollout_advance(rollout.pk)
    canary = rollout.deployments.get(wave=0)
    assert canary.tenant.slug == "he-ux-1" and canary.status == DeploymentStatus.RUNNING
    for name in ("artifact", "code", "schema", "publish", "health"):
        JobStep.objects.filter(job_id=canary.job_id, name=name).update(status=StepStatus.SUCCEEDED)
    # All traffic reached the new version 80 s ago: 220 s of the 300 s bake are left.
    JobStep.objects.filter(job_id=canary.job_id, name="traffic").update(
        status=StepStatus.SUCCEEDED, output={"moved_at": time.time() - 80}
    )
    page = _live(client_for(viewer_user), rollout)
    assert 'id="rollout-status">Baking<' in page
    assert "Baking: watching the canary&#x27;s alarms and error rate for 3 min 40 s more" in page
    assert "then wave 2 (4 pending)" in page
    # Why each tenant is where it is: the planner's rule, per wave and per row.
    assert "Canary: the target&#x27;s ring-0 tenants go first" in page
    assert "ring 0: canary" in page
    assert "The next 1 in ring order: 10% of the 5 targeted, rounded up" in page
    assert "the rest (ring 1)" in page


def test_the_pause_between_waves_reads_as_baking(client_for, viewer_user, release, settings):
    settings.DEPLOY_WATCH_S = 0  # later waves do not watch: the orchestrator pauses
    tenants = _tenants([0, 1, 1, 1, 1, 1])
    rollout = _start(release, tenants)
    rollout.deployments.filter(wave__in=[0, 1]).update(
        status=DeploymentStatus.SUCCEEDED, finished_at=timezone.now()
    )
    Rollout.objects.filter(pk=rollout.pk).update(
        current_wave=1, wave_finished_at=timezone.now() - timedelta(seconds=80)
    )
    c = client_for(viewer_user)
    page = _live(c, rollout)
    # Was "Running · 0 running · 4 pending": now it says what it waits for, and how long.
    assert 'id="rollout-status">Baking<' in page
    assert "Baking: wave 2 is done; wave 3 (4 tenant(s)) starts in 3 min 40 s" in page
    Rollout.objects.filter(pk=rollout.pk).update(
        wave_finished_at=timezone.now() - timedelta(seconds=400)
    )
    assert "Bake over: wave 3 (4 tenant(s)) starts at the orchestrator" in _live(c, rollout)


def test_a_target_without_ring_0_says_why_its_canary_is_first(client_for, viewer_user, release):
    rollout = _start(release, _tenants([2, 1, 1]))
    page = client_for(viewer_user).get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "the target has no ring-0 tenant, so the first tenant in ring order goes first" in page
    assert "first in ring order (ring 1)" in page


def test_the_release_column_names_releases_and_keeps_lambda_versions_small(
    client_for, viewer_user, release
):
    rollout = _start(release, _tenants([0]), bake_s=0)
    Deployment.objects.filter(rollout=rollout).update(
        status=DeploymentStatus.SUCCEEDED, from_version="3", to_version="4"
    )
    page = client_for(viewer_user).get(f"/rollouts/{rollout.pk}/").content.decode()
    assert f"from <code>{OLD}</code> to <code>{NEW}</code>" in page
    assert "Lambda version 3 → 4" in page
    assert "<th>Version</th>" not in page and "<th>From</th>" not in page


def test_the_summary_duration_is_rounded(client_for, viewer_user, release):
    rollout = _start(release, _tenants([0]), bake_s=0)
    end = timezone.now()
    Rollout.objects.filter(pk=rollout.pk).update(
        status=RolloutStatus.SUCCEEDED,
        created_at=end - timedelta(seconds=55.355978),
        finished_at=end,
    )
    c = client_for(viewer_user)
    page = _live(c, rollout)
    assert "Took 55 s;" in page and "0:00:55" not in page
    Rollout.objects.filter(pk=rollout.pk).update(created_at=end - timedelta(seconds=192.4))
    assert "Took 3 min 12 s;" in _live(c, rollout)

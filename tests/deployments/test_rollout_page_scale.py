"""The rollout page of a large rollout (issue 14): counted, aggregated and paged by the
database, so 20,000 deployments read as fast as 20; every wave's progress, the failures
and the live part stay."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments import rollout_display
from deployments.models import Deployment, DeploymentStatus, Release, Rollout, RolloutStatus
from tenants.models import Tenant, TenantStatus

OLD = "2026.11.0"


@pytest.fixture
def release(db):
    Release.objects.create(version=OLD, artifact_type="zip")
    return Release.objects.create(version="2026.12.0", artifact_type="zip")


@pytest.fixture
def viewer(client_for, viewer_user):
    return client_for(viewer_user)


def big_rollout(release: Release, n: int, *, prefix: str = "rs") -> Rollout:
    """``n`` tenants in three waves (1, 10%, the rest), in the second wave: the canary
    succeeded, the second wave's first two failed, one running, the rest pending."""
    tenants = Tenant.objects.bulk_create(
        Tenant(
            name=f"RS {i}",
            slug=f"{prefix}-{i:03d}",
            region="us-east-1",
            ring=0 if i == 0 else 1,
            status=TenantStatus.ACTIVE,
            current_release=OLD,
        )
        for i in range(n)
    )
    second = max(1, -(-(n - 1) // 10))
    sizes = [1, second, n - 1 - second]
    rollout = Rollout.objects.create(release=release, wave_sizes=sizes, current_wave=1)
    rows = []
    for i, tenant in enumerate(tenants):
        wave = 0 if i == 0 else 1 if i <= second else 2
        status = DeploymentStatus.PENDING
        reason = ""
        if wave == 0:
            status = DeploymentStatus.SUCCEEDED
        elif i in (1, 2):
            status, reason = DeploymentStatus.FAILED, f"health check of {tenant.slug}: 500"
        elif i == 3:
            status = DeploymentStatus.RUNNING
        rows.append(
            Deployment(
                rollout=rollout,
                tenant=tenant,
                wave=wave,
                position=i,
                status=status,
                reason=reason,
                from_release=OLD,
            )
        )
    Deployment.objects.bulk_create(rows)
    return rollout


def table_slugs(page: str) -> list[str]:
    body = page.split('<table class="table deployments">', 1)[1].split("</table>", 1)[0]
    return re.findall(r'data-tenant="([\w-]+)"', body)


def test_the_page_costs_the_same_sql_for_30_and_300_deployments(release, viewer, settings):
    settings.ROLLOUT_PAGE_SIZE = 10

    def measure(rollout: Rollout, query: str = "") -> tuple[int, str]:
        with CaptureQueriesContext(connection) as ctx:
            response = viewer.get(f"/rollouts/{rollout.pk}/{query}")
        assert response.status_code == 200
        return len(ctx.captured_queries), response.content.decode()

    small = big_rollout(release, 30, prefix="rs-s")
    large = big_rollout(release, 300, prefix="rs-l")
    for query in ("", "?status=failed", "?wave=3&page=2"):
        assert measure(small, query)[0] == measure(large, query)[0], query
    live = viewer.get(f"/rollouts/{large.pk}/live/?wave=3&page=2")
    assert live.status_code == 200
    _, page = measure(large)
    assert len(table_slugs(page)) == 10 and "Page 1 of 30 · 300 deployments" in page
    # Progress of every wave, counted over all 300.
    assert "Wave 1</a> (canary) · 1/1" in page
    assert "Wave 2</a> · 2/30 · " in page and "2 failed</a>" in page
    assert "Wave 3</a> · 0/269" in page
    assert '<strong id="count-pending">296</strong>' in page


def test_failures_are_listed_and_the_table_filters_and_pages(release, viewer, settings):
    settings.ROLLOUT_PAGE_SIZE = 10
    rollout = big_rollout(release, 60)
    page = viewer.get(f"/rollouts/{rollout.pk}/").content.decode()
    failures = page.split('id="rollout-failures"', 1)[1].split("</div>", 1)[0]
    assert "rs-001" in failures and "health check of rs-002: 500" in failures
    assert "All 2 failed" not in failures  # all of them are listed already

    failed = viewer.get(f"/rollouts/{rollout.pk}/?status=failed").content.decode()
    assert table_slugs(failed) == ["rs-001", "rs-002"]
    assert "Listed: failed deployments (2)." in failed

    third = viewer.get(f"/rollouts/{rollout.pk}/?wave=3&page=2").content.decode()
    assert table_slugs(third) == [f"rs-{i:03d}" for i in range(17, 27)]
    assert "Page 2 of 6 · 53 deployments" in third
    # The live part polls the same page and filter.
    assert f'hx-get="/rollouts/{rollout.pk}/live/?wave=3&amp;page=2"' in third
    live = viewer.get(f"/rollouts/{rollout.pk}/live/?wave=3&page=2").content.decode()
    assert table_slugs(live) == table_slugs(third)


def test_more_failures_than_listed_link_to_all_of_them(release, viewer, monkeypatch):
    monkeypatch.setattr(rollout_display, "FAILURES_LISTED", 1)
    rollout = big_rollout(release, 40)
    page = viewer.get(f"/rollouts/{rollout.pk}/").content.decode()
    failures = page.split('id="rollout-failures"', 1)[1].split("</div>", 1)[0]
    assert "rs-001" in failures and "rs-002" not in failures
    assert '<a href="?status=failed">All 2 failed deployments</a>' in failures


def test_the_phase_and_the_confirmations_come_from_counts(release, viewer, operator_user):
    rollout = big_rollout(release, 40)
    Deployment.objects.filter(rollout=rollout, status=DeploymentStatus.RUNNING).update(
        status=DeploymentStatus.PENDING, reason="waiting for rollout #99"
    )
    rollout_counts = rollout_display.rollout_counts(rollout)
    phase = rollout_display.rollout_phase(rollout, rollout_counts)
    assert phase.label == "Waiting"
    assert phase.sentence.startswith("Waiting: 2 tenant(s) of wave 2 are in another rollout (")
    assert "rollout #99" in phase.sentence

    facts = rollout_display.action_facts(rollout, rollout_counts)
    lines = facts["rollback"]["lines"]
    assert facts["rollback"]["title"] == "Roll back 3 tenant(s) from 2026.12.0?"
    assert lines[1] == f"3 tenant(s) go back to {OLD}: rs-000, rs-001, rs-002"
    Deployment.objects.filter(rollout=rollout).update(status=DeploymentStatus.SUCCEEDED)
    lines = rollout_display.action_facts(rollout, rollout_counts)["rollback"]["lines"]
    assert lines[1] == (
        f"40 tenant(s) go back to {OLD}: rs-000, rs-001, rs-002, rs-003, rs-004, rs-005, "
        "rs-006, rs-007, …"
    )


def test_a_finished_rollouts_summary_is_counted_by_the_database(release, viewer):
    rollout = big_rollout(release, 30)
    Tenant.objects.filter(slug__in=["rs-000", "rs-003"]).update(current_release="2026.12.0")
    Rollout.objects.filter(pk=rollout.pk).update(
        status=RolloutStatus.CANCELLED, finished_at=timezone.now()
    )
    page = viewer.get(f"/rollouts/{rollout.pk}/live/").content.decode()
    summary = page.split('id="rollout-summary"', 1)[1].split("</div>", 1)[0]
    assert "2 failure(s)." in summary
    assert f"<strong>28</strong> tenant(s) run <code>{OLD}</code>" in summary
    assert "<strong>2</strong> tenant(s) run <code>2026.12.0</code>" in summary

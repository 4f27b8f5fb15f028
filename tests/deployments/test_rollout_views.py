"""Rollout pages: roles (operator deploys, viewer reads, outsider 404), preview, actions."""

from __future__ import annotations

import pytest

from deployments.models import Release, Rollout, RolloutStatus
from opsconsole.audit.models import AuditEvent
from tenants.models import Tenant, TenantStatus


@pytest.fixture
def release(db):
    return Release.objects.create(
        version="2026.12.0", artifact_type="zip", zip_bucket="b", zip_key="k", zip_sha256="0" * 64
    )


@pytest.fixture
def tenants(db):
    return [
        Tenant.objects.create(
            name=f"T{i}",
            slug=f"t5-v{i}",
            region="us-east-1",
            ring=1,
            status=TenantStatus.ACTIVE,
            current_release="2026.11.0",
        )
        for i in range(5)
    ]


def test_outsider_gets_404_and_viewer_cannot_deploy(
    client_for, outsider_user, viewer_user, release, tenants
):
    c = client_for(outsider_user)
    for url in (
        "/rollouts/",
        f"/releases/{release.version}/",
        f"/releases/{release.version}/deploy/",
    ):
        assert c.get(url).status_code == 404
    c = client_for(viewer_user)
    page = c.get(f"/releases/{release.version}/")
    assert page.status_code == 200 and b"Deploy to all tenants" not in page.content
    assert c.get(f"/releases/{release.version}/deploy/").status_code == 403
    assert c.post(f"/releases/{release.version}/deploy/", {"action": "start"}).status_code == 403
    assert not Rollout.objects.exists()


def test_operator_previews_then_starts(
    client_for, operator_user, release, tenants, django_capture_on_commit_callbacks, monkeypatch
):
    from deployments import rollouts

    sent = []
    monkeypatch.setattr(rollouts, "_send_advance", sent.append)
    c = client_for(operator_user)
    assert b"Deploy to all tenants" in c.get(f"/releases/{release.version}/").content
    preview = c.get(f"/releases/{release.version}/deploy/")
    assert preview.status_code == 200
    text = preview.content.decode()
    assert "<strong>5</strong> tenant(s) in 3 wave(s)" in text
    assert "Estimated duration" in text
    assert not Rollout.objects.exists()  # the preview makes nothing
    form = {
        "target": "all",
        "on_conflict": "wait",
        "max_parallel": 10,
        "canary_max_failures": 0,
        "wave_failure_pct": 10,
        "bake_s": 0,
        "traffic": "all",
        "canary_percent": 10,
        "canary_minutes": 10,
        "action": "start",
    }
    # Start asks first (tests/test_confirmations.py covers the confirmation itself).
    asked = c.post(f"/releases/{release.version}/deploy/", form)
    assert asked.status_code == 200 and b'id="rollout-start-confirm"' in asked.content
    assert not Rollout.objects.exists()
    form.update(action="confirm-start", expected_total="5")
    with django_capture_on_commit_callbacks(execute=True):
        response = c.post(f"/releases/{release.version}/deploy/", form)
    assert response.status_code == 302, response.content.decode()[-3000:]
    rollout = Rollout.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/rollouts/{rollout.pk}/"
    assert rollout.wave_sizes == [1, 1, 3] and sent == [rollout.pk]
    assert AuditEvent.objects.filter(action="rollout.start", object_id=str(rollout.pk)).exists()

    page = c.get(f"/rollouts/{rollout.pk}/")
    assert page.status_code == 200 and b"t5-v0" in page.content
    live = c.get(f"/rollouts/{rollout.pk}/live/")
    assert live.status_code == 200 and b'hx-trigger="every 2s"' in live.content
    assert c.post(f"/rollouts/{rollout.pk}/pause/").status_code == 302
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.PAUSED
    assert AuditEvent.objects.filter(action="rollout.pause").exists()
    assert c.post(f"/rollouts/{rollout.pk}/cancel/", {"confirmed": "yes"}).status_code == 302
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.CANCELLED  # nothing was in flight
    live = c.get(f"/rollouts/{rollout.pk}/live/")
    assert live.status_code == 286 and b"Summary" in live.content
    assert b"#" + str(rollout.pk).encode() in c.get("/rollouts/").content


def test_viewer_cannot_act_on_a_rollout(client_for, viewer_user, outsider_user, release, tenants):
    rollout = Rollout.objects.create(release=release, wave_sizes=[1])
    assert client_for(viewer_user).get(f"/rollouts/{rollout.pk}/").status_code == 200
    assert client_for(viewer_user).post(f"/rollouts/{rollout.pk}/pause/").status_code == 403
    assert client_for(outsider_user).get(f"/rollouts/{rollout.pk}/").status_code == 404
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.RUNNING


def test_rollback_warns_when_migrations_break_expand_contract(db, release):
    from deployments.models import ReleaseMigration
    from deployments.rollbacks import rollback_warnings

    previous = Release.objects.create(version="2026.11.0", artifact_type="zip")
    for r in (previous, release):
        ReleaseMigration.objects.create(release=r, version=1, name="0001_init.sql", sql="x")
    ReleaseMigration.objects.create(
        release=release, version=2, name="0002_add.sql", sql="ALTER TABLE t ADD COLUMN n int;"
    )
    ReleaseMigration.objects.create(
        release=release, version=3, name="0003_drop.sql", sql="ALTER TABLE t DROP COLUMN old;"
    )
    rollout = Rollout.objects.create(release=release, wave_sizes=[1])
    warnings = rollback_warnings(rollout, previous)
    assert warnings[0] == "0002_add.sql stays applied (schema is not rolled back)."
    assert "0003_drop.sql" in warnings[1] and "expand/contract" in warnings[1]


def test_rollout_page_shows_each_running_step_in_a_flat_number_of_queries(
    client_for, viewer_user, release, monkeypatch
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from deployments import rollouts
    from opsconsole.jobs.models import JobStep, StepStatus

    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)
    c = client_for(viewer_user)

    def page_queries(n: int) -> tuple[int, bytes]:
        for i in range(n):
            Tenant.objects.create(
                name=f"P{n}-{i}",
                slug=f"t5-p{n}-{i}",
                status=TenantStatus.ACTIVE,
                current_release="2026.11.0",
            )
        rollout = rollouts.rollout_start(
            release=release,
            target=rollouts.Target(kind="tenants", values=[f"t5-p{n}-{i}" for i in range(n)]),
            strategy=rollouts.Strategy(max_parallel=100, bake_s=0),
        )
        Rollout.objects.filter(pk=rollout.pk).update(current_wave=2)
        rollouts.rollout_advance(rollout.pk)
        first = rollout.deployments.order_by("wave", "position").first()
        JobStep.objects.filter(job_id=first.job_id, name="artifact").update(
            status=StepStatus.SUCCEEDED
        )
        JobStep.objects.filter(job_id=first.job_id, name="code").update(status=StepStatus.WAITING)
        with CaptureQueriesContext(connection) as queries:
            response = c.get(f"/rollouts/{rollout.pk}/")
        assert response.status_code == 200
        return len(queries), response.content

    few, content = page_queries(3)
    assert (
        b"Function configuration, code published as a version" in content
    )  # the waiting step, from its job
    assert b"Artifact present in the tenant&#x27;s region" in content  # the others' next
    many, _ = page_queries(40)
    assert many == few


def test_starting_a_wave_costs_the_same_queries_for_5_or_50_tenants(db, release, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from deployments import rollouts
    from deployments.models import Deployment

    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)

    def advance_queries(n: int) -> int:
        slugs = [f"t5-w{n}-{i}" for i in range(n)]
        for slug in slugs:
            Tenant.objects.create(name=slug, slug=slug, status=TenantStatus.ACTIVE)
        rollout = rollouts.rollout_start(
            release=release,
            target=rollouts.Target(kind="tenants", values=slugs),
            strategy=rollouts.Strategy(max_parallel=100, bake_s=0),
        )
        Rollout.objects.filter(pk=rollout.pk).update(current_wave=2)
        with CaptureQueriesContext(connection) as queries:
            assert rollouts.rollout_advance(rollout.pk)["started"] == n
        assert Deployment.objects.filter(rollout=rollout, job__isnull=False).count() == n
        return len(queries)

    assert advance_queries(5) == advance_queries(50)


def test_a_deployment_whose_hook_died_is_caught_up_after_the_grace(db, release, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from deployments import rollouts
    from deployments.models import DeploymentStatus
    from opsconsole.jobs.models import Job, JobStatus

    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)
    tenant = Tenant.objects.create(name="H", slug="t5-hook", status=TenantStatus.ACTIVE)
    rollout = rollouts.rollout_start(
        release=release,
        target=rollouts.Target(kind="tenants", values=[tenant.slug]),
        strategy=rollouts.Strategy(bake_s=0),
    )
    rollouts.rollout_advance(rollout.pk)
    dep = rollout.deployments.get()
    # The job ended, its worker died before the hook's writes.
    Job.objects.filter(pk=dep.job_id).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now())
    rollouts.rollout_advance(rollout.pk)
    dep.refresh_from_db()
    assert dep.status == DeploymentStatus.RUNNING  # its hook may still be running: wait
    Job.objects.filter(pk=dep.job_id).update(finished_at=timezone.now() - timedelta(minutes=5))
    rollouts.rollout_advance(rollout.pk)
    dep.refresh_from_db()
    tenant.refresh_from_db()
    assert dep.status == DeploymentStatus.SUCCEEDED
    assert tenant.current_release == release.version
    rollout.refresh_from_db()
    assert rollout.status == "succeeded"


@pytest.mark.parametrize("scoped", [False, True])
def test_rollout_list_costs_the_same_queries_for_2_or_20_rollouts(
    db, client_for, viewer_user, scoped
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from deployments.models import Deployment
    from tenants.models import TenantScope

    mine = Tenant.objects.create(name="M", slug="rl-m", region="us-east-1")
    other = Tenant.objects.create(name="O", slug="rl-o", region="us-east-1")
    if scoped:
        TenantScope.objects.create(user=viewer_user).tenants.add(mine)
    release = Release.objects.create(version="rl-1", artifact_type="zip")
    client = client_for(viewer_user)

    def add(n: int) -> None:
        for _ in range(n):
            rollout = Rollout.objects.create(release=release, wave_sizes=[2], status="succeeded")
            Deployment.objects.create(rollout=rollout, tenant=mine, wave=0, status="succeeded")
            Deployment.objects.create(rollout=rollout, tenant=other, wave=0, status="failed")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            page = client.get("/rollouts/")
        assert page.status_code == 200
        return len(captured)

    add(2)
    few = queries()
    add(18)
    assert queries() == few
    # The counts are the visible ones: a scoped viewer sees only their tenant's success.
    counts = client.get("/rollouts/").context["items"][0][1]
    assert counts["totals"]["failed"] == (0 if scoped else 1) and counts["total"] == (
        1 if scoped else 2
    )

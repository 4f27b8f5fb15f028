"""The audit log for people (issue 16): details as key: value (no Python dicts or lists),
objects as links to their pages, a table that wraps instead of scrolling sideways."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deployments.models import Release, Rollout
from opsconsole.audit.services import audit_record
from opsconsole.jobs.models import Job
from tenants.models import Tenant


@pytest.fixture
def events(db, admin_user, viewer_user):
    tenant = Tenant.objects.create(name="HE audit", slug="he-audit")
    release = Release.objects.create(version="2026.12.0", artifact_type="zip")
    rollout = Rollout.objects.create(release=release, wave_sizes=[1])
    back = Rollout.objects.create(release=release, wave_sizes=[1], rollback_of=rollout)
    job = Job.objects.create(kind="tenant_repair", subject_type="tenant", subject_id="he-audit")

    def record(action, obj, **details):
        audit_record(request=None, action=action, obj=obj, actor=admin_user, **details)

    record(
        "tenant.onboard",
        tenant,
        isolation="shared",
        release="newest",
        secret_names=["API_KEY", "STRIPE_KEY"],
        tags={"plan": "gold", "team": "billing"},
    )
    record("release.register", release, artifact="s3://b/k")
    record("rollout.start", rollout, release=release.version, tenants=1)
    record("rollout.rollback", rollout, rollbacks=[back.pk])
    record("job.retry", job)
    record(
        "user.update",
        viewer_user,
        before={"role": "viewer", "is_active": True},
        after={"role": "operator", "is_active": True},
    )
    return {"tenant": tenant, "release": release, "rollout": rollout, "back": back, "job": job}


def _visible(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_details_read_as_key_value_pairs(client_for, admin_user, events):
    text = _visible(client_for(admin_user).get("/audit/").content.decode())
    for python in ("{'", "['", "':", "True", "False"):
        assert python not in text, python
    assert "secret names API_KEY, STRIPE_KEY" in text
    assert "tags plan: gold; team: billing" in text
    assert "role viewer → operator" in text and "is active yes" in text
    assert "release newest" in text  # not a release: no link, as it was recorded


def test_objects_link_to_their_pages(client_for, admin_user, viewer_user, events):
    page = client_for(admin_user).get("/audit/").content.decode()
    r, back, job = events["rollout"], events["back"], events["job"]
    for link in (
        '<a href="/tenants/he-audit/">Tenant he-audit</a>',
        '<a href="/releases/2026.12.0/">Release 2026.12.0</a>',
        f'<a href="/rollouts/{r.pk}/">Rollout #{r.pk} of 2026.12.0</a>',
        f'<a href="/jobs/{job.pk}/">Job {job}</a>',
        f'<a href="/rollouts/{back.pk}/">Rollout #{back.pk}</a>',  # in the rollback's details
        '<a href="/releases/2026.12.0/">2026.12.0</a>',  # the release a rollout started
        f'<a href="/users/{viewer_user.pk}/">User vera</a>',
    ):
        assert link in page, link
    text = _visible(page)
    assert "tenants.tenant" not in text and "deployments.rollout" not in text
    # The user pages are the admins': a viewer reads the name, without a link.
    viewer_page = client_for(viewer_user).get("/audit/").content.decode()
    assert "User vera" in viewer_page and f'href="/users/{viewer_user.pk}/"' not in viewer_page


def test_the_object_filter_speaks_of_tenants_not_model_labels(client_for, admin_user, events):
    page = client_for(admin_user).get("/audit/?object_type=tenants.tenant").content.decode()
    assert '<option value="tenants.tenant" selected>Tenant</option>' in page
    assert _visible(page).count("Tenant he-audit") == 1


def test_the_table_wraps_rather_than_scrolling_sideways(client_for, admin_user, events):
    page = client_for(admin_user).get("/audit/").content.decode()
    assert '<table class="table audit">' in page and '<code class="small">{' not in page
    css = (Path(__file__).parents[1] / "static/css/console.css").read_text()
    assert ".table.audit { table-layout: fixed; }" in css
    assert ".table.audit td { overflow-wrap: anywhere; }" in css

"""Confirmations before a rollout starts, is cancelled, rolled back or retried (issue 16).

Each one: the first POST only asks (naming the release and how many tenants) and changes
nothing; cancelling the confirmation changes nothing; confirming does it and the message
after it says what happened and links the rollout. The dialogs need no inline script."""

from __future__ import annotations

import re

import pytest

from deployments import rollouts
from deployments.models import Deployment, DeploymentStatus, Release, Rollout, RolloutStatus
from opsconsole.audit.models import AuditEvent
from tenants.models import Tenant, TenantStatus

NEW = "2026.12.0"
OLD = "2026.11.0"

START_FORM = {
    "target": "all",
    "on_conflict": "wait",
    "max_parallel": 10,
    "canary_max_failures": 0,
    "wave_failure_pct": 10,
    "bake_s": 0,
    "traffic": "all",
    "canary_percent": 10,
    "canary_minutes": 10,
}


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)


@pytest.fixture
def release(db):
    Release.objects.create(version=OLD, artifact_type="zip")
    return Release.objects.create(version=NEW, artifact_type="zip")


@pytest.fixture
def tenants(db):
    return [
        Tenant.objects.create(
            name=f"HE {i}",
            slug=f"he-cf-{i}",
            ring=0 if i == 0 else 1,
            status=TenantStatus.ACTIVE,
            current_release=OLD,
        )
        for i in range(4)
    ]


@pytest.fixture
def rollout(release, tenants):
    return rollouts.rollout_start(
        release=release,
        target=rollouts.Target(kind="all"),
        strategy=rollouts.Strategy(max_parallel=10, bake_s=0),
    )


def _state(rollout: Rollout):
    """Everything an action could change: the rollout, its rows, other rollouts, audit."""
    rollout.refresh_from_db()
    return (
        rollout.status,
        sorted(rollout.deployments.values_list("tenant__slug", "status")),
        Rollout.objects.count(),
        AuditEvent.objects.count(),
    )


def _message_links(response) -> list[str]:
    return re.findall(r'<li class="msg msg-\w+">(.*?)</li>', response.content.decode(), re.S)


def test_start_asks_first_and_cancelling_the_confirmation_changes_nothing(
    client_for, operator_user, release, tenants
):
    c = client_for(operator_user)
    url = f"/releases/{NEW}/deploy/"
    asked = c.post(url, {**START_FORM, "action": "start"})
    page = asked.content.decode()
    assert asked.status_code == 200 and not Rollout.objects.exists()
    assert f"Deploy {NEW} to 4 tenant(s)?" in page
    assert "The canary first: he-cf-0." in page
    assert 'name="expected_total" value="4"' in page
    # Its cancel button is the preview's: the page again, nothing started.
    cancelled = c.post(url, {**START_FORM, "action": "preview", "expected_total": "4"})
    assert cancelled.status_code == 200 and not Rollout.objects.exists()
    assert 'id="confirm-start"' not in cancelled.content.decode()
    # A confirmation of another count (the target changed meanwhile) asks again.
    stale = c.post(url, {**START_FORM, "action": "confirm-start", "expected_total": "3"})
    assert stale.status_code == 200 and not Rollout.objects.exists()
    assert f"Deploy {NEW} to 4 tenant(s)?" in stale.content.decode()

    done = c.post(
        url, {**START_FORM, "action": "confirm-start", "expected_total": "4"}, follow=True
    )
    rollout = Rollout.objects.get()
    assert [m for m in _message_links(done)] == [
        f'<a href="/rollouts/{rollout.pk}/">Rollout #{rollout.pk}</a> started: {NEW} on 4 '
        "tenant(s) in 3 wave(s), the canary first."
    ]


@pytest.mark.parametrize("action", ["cancel", "rollback", "retry"])
def test_an_unconfirmed_action_only_asks(client_for, operator_user, rollout, action):
    Deployment.objects.filter(rollout=rollout, wave=0).update(status=DeploymentStatus.FAILED)
    before = _state(rollout)
    c = client_for(operator_user)
    asked = c.post(f"/rollouts/{rollout.pk}/{action}/")
    page = asked.content.decode()
    assert asked.status_code == 200
    assert f'id="confirm-{action}"' in page and "data-confirm-open" in page
    # Its cancel is a link back to the rollout: a GET, which changes nothing either.
    assert f'<a class="button" href="/rollouts/{rollout.pk}/" autofocus>' in page
    assert c.get(f"/rollouts/{rollout.pk}/").status_code == 200
    assert _state(rollout) == before


def test_the_rollout_page_offers_each_dialog_without_inline_script(
    client_for, operator_user, rollout
):
    Deployment.objects.filter(rollout=rollout, wave=0).update(status=DeploymentStatus.FAILED)
    page = client_for(operator_user).get(f"/rollouts/{rollout.pk}/").content.decode()
    for action in ("cancel", "rollback", "retry"):
        assert f'data-confirm="confirm-{action}"' in page
        dialog = re.search(f'<dialog id="confirm-{action}" class="confirm".*?</dialog>', page, re.S)
        # Its confirm posts the action, confirmed; its cancel only closes it (no request).
        assert f'<form method="post" action="/rollouts/{rollout.pk}/{action}/">' in dialog[0]
        assert '<input type="hidden" name="confirmed" value="yes">' in dialog[0]
        assert 'formmethod="dialog"' in dialog[0]
    assert "Cancel rollout #" in page and "3 pending deployment(s) will not start." in page
    assert "Retry 1 failed deployment(s) of 2026.12.0?" in page
    assert f"1 tenant(s) go back to {OLD}: he-cf-0" in page
    # No inline script or handler: a CSP may come (scripts load from static/js/).
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert not re.search(r"\son(submit|click)=", page) and "hx-confirm" not in page
    assert "/static/js/confirm.js" in page


def test_confirmed_cancel_cancels_and_says_so(client_for, operator_user, rollout):
    c = client_for(operator_user)
    done = c.post(f"/rollouts/{rollout.pk}/cancel/", {"confirmed": "yes"}, follow=True)
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.CANCELLED
    assert _message_links(done) == [
        f'<a href="/rollouts/{rollout.pk}/">Rollout #{rollout.pk}</a> is cancelled: 4 pending '
        "deployment(s) will not start; 0 running finish."
    ]


def test_confirmed_retry_starts_the_failed_again_and_says_so(client_for, operator_user, rollout):
    Deployment.objects.filter(rollout=rollout, wave=0).update(status=DeploymentStatus.FAILED)
    done = client_for(operator_user).post(
        f"/rollouts/{rollout.pk}/retry/", {"confirmed": "yes"}, follow=True
    )
    assert not rollout.deployments.filter(status=DeploymentStatus.FAILED).exists()
    assert _message_links(done) == [
        f'<a href="/rollouts/{rollout.pk}/">Rollout #{rollout.pk}</a>: 1 failed deployment(s) '
        "start again."
    ]


def test_confirmed_rollback_starts_the_way_back_and_links_it(client_for, operator_user, rollout):
    Deployment.objects.filter(rollout=rollout, wave__in=[0, 1]).update(
        status=DeploymentStatus.SUCCEEDED
    )
    asked = client_for(operator_user).post(f"/rollouts/{rollout.pk}/rollback/")
    page = asked.content.decode()
    # Both ways back, with what each costs; moving the aliases back is checked.
    assert 'name="method" value="alias" checked' in page
    assert 'name="method" value="redeploy"' in page
    assert "Move aliases back</strong>: 2 Lambda control calls" in page
    assert "Redeploy the earlier release</strong>: 4 Lambda control calls" in page
    done = client_for(operator_user).post(
        f"/rollouts/{rollout.pk}/rollback/", {"confirmed": "yes", "method": "alias"}, follow=True
    )
    back = Rollout.objects.get(rollback_of=rollout)
    assert back.release.version == OLD and sum(back.wave_sizes) == 2
    assert back.method == "alias"
    assert done.redirect_chain[-1][0] == f"/rollouts/{back.pk}/"
    assert (
        f'<a href="/rollouts/{back.pk}/">Rollout #{back.pk}</a> rolls 2 tenant(s) back to {OLD} '
        f"(from rollout #{rollout.pk}) by moving their aliases back."
    ) in _message_links(done)


def test_rollback_can_redeploy_instead(client_for, operator_user, rollout):
    Deployment.objects.filter(rollout=rollout, wave=0).update(status=DeploymentStatus.SUCCEEDED)
    client_for(operator_user).post(
        f"/rollouts/{rollout.pk}/rollback/", {"confirmed": "yes", "method": "redeploy"}
    )
    assert Rollout.objects.get(rollback_of=rollout).method == "deploy"


def test_a_viewer_gets_no_confirmation_and_changes_nothing(client_for, viewer_user, rollout):
    before = _state(rollout)
    for action in ("cancel", "rollback", "retry"):
        response = client_for(viewer_user).post(f"/rollouts/{rollout.pk}/{action}/")
        assert response.status_code == 403
    assert _state(rollout) == before

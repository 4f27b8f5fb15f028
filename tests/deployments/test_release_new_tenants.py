"""Which release a new tenant starts on: a fleet-wide rollout's, else the one an operator
chose, else the newest registered."""

from __future__ import annotations

import pytest
from django.urls import reverse

from deployments.models import ArtifactType, Release, Rollout, RolloutStatus
from opsconsole.audit.models import AuditEvent
from tenants import release_source


def _release(version: str) -> Release:
    return Release.objects.create(
        version=version, artifact_type=ArtifactType.ZIP, runtime="python3.12", handler="a.h"
    )


def _url(release: Release) -> str:
    return reverse("deployments:release_start_new_tenants", args=[release.version])


def test_an_operator_chooses_the_release_new_tenants_start_on(db, client_for, operator_user):
    proven, _newest = _release("1.0.0"), _release("1.1.0-rc")
    assert release_source.get().newest_version() == "1.1.0-rc"

    response = client_for(operator_user).post(_url(proven))

    assert response.status_code == 302
    assert release_source.get().newest_version() == "1.0.0"
    assert AuditEvent.objects.filter(action="release.start_new_tenants").count() == 1
    page = client_for(operator_user).get(reverse("deployments:release_detail", args=["1.0.0"]))
    assert "Start on this release" in page.content.decode()


def test_choosing_another_release_moves_the_choice(db, client_for, operator_user):
    first, second = _release("1.0.0"), _release("2.0.0")
    client = client_for(operator_user)
    client.post(_url(first))
    client.post(_url(second))
    assert list(Release.objects.filter(starts_new_tenants=True)) == [second]


def test_a_fleet_wide_rollout_in_progress_comes_first(db, operator_user):
    chosen, rolling = _release("1.0.0"), _release("2.0.0")
    chosen.starts_new_tenants = True
    chosen.save()
    Rollout.objects.create(
        release=rolling,
        status=RolloutStatus.RUNNING,
        target={"kind": "all"},
        created_by=operator_user,
    )
    assert release_source.get().newest_version() == "2.0.0"


@pytest.mark.parametrize("method", ["get", "post"])
def test_viewers_and_outsiders_cannot_choose(db, client_for, viewer_user, outsider_user, method):
    release = _release("1.0.0")
    viewer = getattr(client_for(viewer_user), method)(_url(release))
    # A member is told the method is wrong (405) or the role too low (403); an outsider
    # learns nothing (404), whatever the method (opsconsole.accounts.access).
    assert viewer.status_code == (405 if method == "get" else 403)
    outsider = getattr(client_for(outsider_user), method)(_url(release))
    assert outsider.status_code == 404
    assert not Release.objects.filter(starts_new_tenants=True).exists()

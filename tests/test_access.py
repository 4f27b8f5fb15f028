"""Every view checks the user's role: anonymous -> login, outsider -> 404, too low -> 403."""

import pytest
from django.urls import reverse

from opsconsole.jobs.models import Job, JobStatus

# (method, url name, needs a job id, lowest role allowed)
VIEWS = [
    ("get", "tenants:list", False, "viewer"),
    ("get", "deployments:release_list", False, "viewer"),
    ("get", "deployments:rollout_list", False, "viewer"),
    ("get", "audit", False, "viewer"),
    ("get", "account", False, "viewer"),
    ("get", "jobs:detail", True, "viewer"),
    ("get", "jobs:progress", True, "viewer"),
    ("post", "account_check", False, "operator"),
    ("post", "jobs:retry", True, "operator"),
    ("post", "jobs:cancel", True, "operator"),
    ("get", "users:list", False, "admin"),
    ("get", "users:create", False, "admin"),
]
RANK = {"viewer": 1, "operator": 2, "admin": 3}


@pytest.fixture
def job(db):
    # A finished job: retry and cancel then answer without touching AWS or the broker.
    job = Job.objects.create(kind="account_check", status=JobStatus.SUCCEEDED)
    return job


def _url(name, needs_job, job):
    return reverse(name, args=[job.pk]) if needs_job else reverse(name)


@pytest.mark.parametrize(("method", "name", "needs_job", "role"), VIEWS)
def test_anonymous_is_sent_to_login(client, job, method, name, needs_job, role):
    response = getattr(client, method)(_url(name, needs_job, job))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(("method", "name", "needs_job", "role"), VIEWS)
def test_outsider_gets_404(client_for, outsider_user, job, method, name, needs_job, role):
    client = client_for(outsider_user)
    assert getattr(client, method)(_url(name, needs_job, job)).status_code == 404


@pytest.mark.parametrize("who", ["viewer", "operator", "admin"])
@pytest.mark.parametrize(("method", "name", "needs_job", "role"), VIEWS)
def test_role_matrix(request, client_for, job, who, method, name, needs_job, role):
    user = request.getfixturevalue(f"{who}_user")
    client = client_for(user)
    response = getattr(client, method)(_url(name, needs_job, job))
    if RANK[who] >= RANK[role]:
        assert response.status_code in (200, 286, 302), response.content[:200]
    else:
        assert response.status_code == 403


def test_deactivated_member_is_an_outsider(client_for, viewer_user):
    viewer_user.is_active = False
    viewer_user.save()
    client = client_for(viewer_user)
    # Django's ModelBackend refuses inactive users: they are logged out, so back to login.
    response = client.get(reverse("tenants:list"))
    assert response.status_code == 302


def test_healthz_needs_no_login(client, db, aws):
    assert client.get("/healthz").status_code in (200, 503)

"""The cross-tenant matrix (issue 13): every route of the URL resolver, GET and POST.

The routes come from ``get_resolver()`` (includes walked), so a new view cannot escape:
a route that is in none of the tables below fails ``test_every_route_is_in_the_matrix``
until someone says here whether it is about a tenant.

For a route about a tenant, its path is filled with the objects of tenant ``bravo`` (the
tenant itself, its job, a rollout deploying to it, its attachment, its subscriber), and

- an outsider (logged in, no role) gets 404;
- a viewer and an admin limited to tenant ``alpha`` get 404, for GET and POST alike: the
  scope check runs before the role and the method, so neither a 403 nor a 405 says that
  the object exists;
- a viewer limited to ``bravo`` (by its tag) does not get 404 on GET.

A route not about a tenant (a fleet page, a release, a user) answers 404 to an outsider and
sends an anonymous caller to the login page; public routes are listed with their reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from deployments import rollouts
from deployments.models import Release
from opsconsole.accounts.models import Role, User
from opsconsole.jobs.models import Job, JobStatus
from tenants.models import AlarmSubscription, Attachment, Tenant, TenantScope, TenantStatus

# Routes under api/ are the JSON API's: a browser session is not how they are called. The
# same matrix for them, with bearer tokens of scoped users, lives in this file:
API_ROUTES_HANDLED_IN = "tests/api/test_api_scope.py"
API_PREFIX = "api/"

# About a tenant: the path names bravo or one of its objects (see _fill).
TENANT_ROUTES = {
    "tenants/<slug:slug>/",
    "tenants/<slug:slug>/health/",
    "tenants/<slug:slug>/notifications/topic/",
    "tenants/<slug:slug>/notifications/add/",
    "tenants/<slug:slug>/notifications/<int:pk>/remove/",
    "tenants/<slug:slug>/notifications/refresh/",
    "tenants/<slug:slug>/edit/",
    "tenants/<slug:slug>/drift/",
    "tenants/<slug:slug>/repair/",
    "tenants/<slug:slug>/rotate-password/",
    "tenants/<slug:slug>/suspend/",
    "tenants/<slug:slug>/resume/",
    "tenants/<slug:slug>/offboard/",
    "tenants/<slug:slug>/restore/",
    "tenants/<slug:slug>/attachments/",
    "tenants/attachments/<int:pk>/remove/",
    "jobs/<int:job_id>/",
    "jobs/<int:job_id>/progress/",
    "jobs/<int:job_id>/retry/",
    "jobs/<int:job_id>/cancel/",
    "rollouts/<int:rollout_id>/",
    "rollouts/<int:rollout_id>/live/",
    "rollouts/<int:rollout_id>/<str:action>/",
    "schemas/<slug:slug>/",
}

# For members only, but not about one tenant: what a scoped user sees there is filtered
# (tests/test_tenant_scope_pages.py), or the page is refused to them as a whole.
FLEET_ROUTES = {
    "": "home: redirects to the tenant list",
    "account/": "the AWS account baseline; shows the user's own scope",
    "start/": "Getting started: links the user's own first tenant and last rollout",
    "glossary/": "the terms of the trade: nothing about a tenant",
    "account/check/": "the fleet's account check; refused to scoped users",
    "audit/": "filtered: a scoped user reads entries about their tenants only",
    "users/": "user management; refused to scoped admins",
    "users/new/": "user management; refused to scoped admins",
    "users/<int:user_id>/": "a user, not a tenant; refused to scoped admins",
    "tenants/": "the fleet page: filtered to the visible tenants",
    "tenants/new/": "onboarding a new tenant",
    "tenants/attachments/": "fleet attachments: a scoped user sees the fleet's and their own",
    "tenants/notifications/": "the fleet topic: a scoped user sees only their tenants on it",
    "tenants/notifications/add/": "the fleet topic: refused to scoped users",
    "tenants/notifications/<int:pk>/remove/": "a fleet subscriber: refused to scoped users",
    "tenants/notifications/refresh/": "the fleet topic: refused to scoped users",
    "releases/": "releases are not per tenant: visible to every member",
    "releases/new/": "registering a release (not per tenant)",
    "releases/<str:version>/": "a release: its rollouts list is filtered",
    "releases/<str:version>/deploy/": "the rollout form: a scoped user names their tenants",
    "releases/<str:version>/start-new-tenants/": "the fleet's default: refused to scoped users",
    "rollouts/": "filtered: rollouts reaching the user's tenants",
    "schemas/": "filtered: the visible tenants' schemas",
    "account/tokens/": "the user's own API tokens (opsconsole.api)",
    "account/tokens/<int:token_id>/revoke/": "one of the user's own API tokens",
    # Admin-only webhook endpoints and their deliveries (opsconsole.webhooks).
    "webhooks/": "webhook endpoints (admin)",
    "webhooks/new/": "webhook endpoints (admin)",
    "webhooks/<int:endpoint_id>/": "a webhook endpoint (admin), not a tenant",
    "webhooks/<int:endpoint_id>/edit/": "a webhook endpoint (admin), not a tenant",
    "webhooks/<int:endpoint_id>/delete/": "a webhook endpoint (admin), not a tenant",
    "webhooks/<int:endpoint_id>/test/": "a webhook endpoint (admin), not a tenant",
    "webhooks/deliveries/<int:delivery_id>/": "a webhook delivery (admin)",
    "webhooks/deliveries/<int:delivery_id>/retry/": "a webhook delivery (admin)",
    # AWS accounts (cells, opsconsole.awsaccounts): part of the fleet, refused to scoped users.
    "aws-accounts/": "the AWS accounts tenants live in; refused to scoped users",
    "aws-accounts/new/": "registering an AWS account (admin); refused to scoped users",
    "aws-accounts/<slug:name>/": "an AWS account, not a tenant; refused to scoped users",
    "aws-accounts/<slug:name>/edit/": "an AWS account (admin); refused to scoped users",
    "aws-accounts/<slug:name>/delete/": "an AWS account (admin); refused to scoped users",
    "aws-accounts/<slug:name>/check/<str:region>/": "a baseline check; refused to scoped users",
}

# Answer anyone, logged in or not.
PUBLIC_ROUTES = {
    "healthz": "up or down for load balancers; details need a login",
    "favicon.ico": "a redirect to a static file",
    "login/": "the login page",
    "logout/": "logging out",
    "migrations/": "old address: a redirect to /schemas/, which checks",
    "migrations/<slug:slug>/": "old address: redirects any slug unread; /schemas/ checks",
}

# Objects without a fixture here fill with an id nobody has: what these routes check is
# the role, and an outsider must get 404 before any lookup.
_NO_SUCH_ID = 987654


def _walk(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def all_routes() -> list[str]:
    return sorted({r for r in _walk(get_resolver().url_patterns) if not r.startswith(API_PREFIX)})


ROUTES = all_routes()


def test_every_route_is_in_the_matrix():
    known = TENANT_ROUTES | set(FLEET_ROUTES) | set(PUBLIC_ROUTES)
    unknown = [r for r in ROUTES if r not in known]
    assert not unknown, (
        f"New route(s) {unknown}: add it to the matrix in {__file__} (TENANT_ROUTES when "
        "the address names a tenant or one of its objects, else FLEET_ROUTES or "
        "PUBLIC_ROUTES with the reason)."
    )
    gone = sorted(known - set(ROUTES))
    assert not gone, f"Route(s) {gone} no longer exist: remove them from the matrix."


def test_api_routes_are_left_to_the_api_matrix():
    api = [r for r in _walk(get_resolver().url_patterns) if r.startswith(API_PREFIX)]
    # Skipped here only because that file covers them with bearer tokens.
    assert not api or (Path(__file__).parent.parent / API_ROUTES_HANDLED_IN).is_file(), (
        f"{len(api)} API route(s) and no {API_ROUTES_HANDLED_IN} to check them."
    )


# --- the world: two tenants, each one's objects, and the users --------------------------


@pytest.fixture
def world(db, monkeypatch):
    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)
    release = Release.objects.create(version="2026.12.1", artifact_type="zip")
    alpha, bravo = (
        Tenant.objects.create(
            name=slug.title(),
            slug=slug,
            region="us-east-1",
            status=TenantStatus.ACTIVE,
            tags={"team": team},
        )
        for slug, team in (("alpha", "acme"), ("bravo", "globex"))
    )
    job = Job.objects.create(
        kind="tenant_reconcile",
        subject_type="tenant",
        subject_id=bravo.slug,
        status=JobStatus.SUCCEEDED,
    )
    rollout = rollouts.rollout_start(
        release=release,
        target=rollouts.Target(kind="tenants", values=[bravo.slug]),
        strategy=rollouts.Strategy(max_parallel=1, bake_s=0),
    )
    attachment = Attachment.objects.create(
        tenant=bravo, name="search", host="search.internal", port=9200, security_group_id="sg-1"
    )
    subscriber = AlarmSubscription.objects.create(
        tenant=bravo, protocol="email", endpoint="ops@bravo.example"
    )
    fleet_subscriber = AlarmSubscription.objects.create(
        tenant=None, protocol="email", endpoint="ops@example.com"
    )

    def user(name: str, role: str, *, tenants=(), tags=None) -> User:
        # No password: force_login needs none, and hashing one costs a quarter second.
        person = User.objects.create(username=name, role=role)
        if tenants or tags:
            scope = TenantScope.objects.create(user=person, tags=tags or {})
            scope.tenants.set(tenants)
        return person

    users = {
        "outsider": user("olga", Role.NONE),
        "alpha_viewer": user("avi", Role.VIEWER, tenants=[alpha]),
        "alpha_admin": user("ada-alpha", Role.ADMIN, tenants=[alpha]),
        # By tag: the same rule as a list, through tenants.scope.scope_filter's other arm.
        "bravo_viewer": user("bvi", Role.VIEWER, tags={"team": ["globex"]}),
    }
    values = {
        "slug": bravo.slug,
        "job_id": job.pk,
        "rollout_id": rollout.pk,
        "action": "pause",
        "version": release.version,
        "user_id": users["bravo_viewer"].pk,
        "tenants/attachments/<int:pk>/remove/": attachment.pk,
        "tenants/<slug:slug>/notifications/<int:pk>/remove/": subscriber.pk,
        "tenants/notifications/<int:pk>/remove/": fleet_subscriber.pk,
    }
    return {"users": users, "values": values}


_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")


def _fill(route: str, values: dict) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        # "pk" means a different object on each route: those are keyed by the route.
        key = route if name == "pk" else name
        return str(values.get(key, _NO_SUCH_ID))

    return "/" + _PARAM.sub(value, route)


def _as(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _call(client: Client, method: str, url: str):
    return client.get(url) if method == "get" else client.post(url, {})


MEMBER_ROUTES = sorted(r for r in ROUTES if r not in PUBLIC_ROUTES)
SCOPED_ROUTES = sorted(r for r in ROUTES if r in TENANT_ROUTES)


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("route", MEMBER_ROUTES)
def test_outsider_and_anonymous(world, route, method):
    url = _fill(route, world["values"])
    response = _call(_as(None), method, url)
    if response.status_code != 404:
        assert response.status_code == 302, (url, response.status_code)
        assert response["Location"].startswith(reverse("login")), (url, response["Location"])
    outsider = _call(_as(world["users"]["outsider"]), method, url)
    assert outsider.status_code == 404, (url, outsider.status_code)


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("route", SCOPED_ROUTES)
def test_another_tenants_scope_gets_404(world, route, method):
    url = _fill(route, world["values"])
    for who in ("alpha_viewer", "alpha_admin"):
        response = _call(_as(world["users"][who]), method, url)
        assert response.status_code == 404, (who, method, url, response.status_code)


@pytest.mark.parametrize("route", SCOPED_ROUTES)
def test_own_scope_is_let_in(world, aws, route):
    url = _fill(route, world["values"])
    response = _call(_as(world["users"]["bravo_viewer"]), "get", url)
    # 200 for pages, 286 for a finished partial, 403/405 for writes: never "not found".
    assert response.status_code != 404, url
    assert response.status_code < 500, (url, response.status_code)

"""The console as each kind of user meets it (issue 16), in Chromium.

As anonymous, viewer, operator, admin and a viewer limited to one tenant: every page the
navigation and footer link, the pages of a tenant, a release, a rollout and a job, and
addresses that do not exist. On each: no 5xx, no JavaScript error (uncaught exceptions
and console errors), the console's layout around it, and no axe-core violation of serious
or critical impact, with every <details> opened so the text inside is checked too.

axe-core (tests/browser/axe.py) is loaded by Playwright as an init script, which runs in
every document before the page's own scripts and is not subject to the page's
Content-Security-Policy. So the crawl needs no CSP bypass: the pages run under the policy
they are served with, and a script it blocks shows up here as a console error.
page.add_script_tag would need one (its inline <script> is refused by the policy) and
costs a round trip per page; tests/browser/test_csp.py checks the policy itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client

from deployments import rollouts
from deployments.models import Release
from opsconsole.accounts.models import Role, User
from opsconsole.jobs.models import Job, JobStatus, JobStep, StepStatus
from tenants.models import TenantScope, TenantStatus
from tests.browser.axe import axe_script, axe_violations
from tests.tenants.conftest import make_tenant

pytestmark = pytest.mark.browser

ROLES = ["anonymous", "viewer", "operator", "admin", "scoped viewer"]
# `make test` crawls as the least and the most a person may see, and a scoped viewer; the
# viewer and operator crawls (pages between those two) run with `make faults` (-m long).
_LONG_ROLES = {"viewer", "operator"}
ROLE_PARAMS = [
    pytest.param(who, marks=pytest.mark.long) if who in _LONG_ROLES else who for who in ROLES
]

# Addresses nobody has: a 404 in the layout for a member; anonymous callers get a 404
# or the login page, never a 500.
UNKNOWN = [
    "/no-such-page/",
    "/tenants/no-such-tenant/",
    "/releases/0.0.0-nothing/",
    "/rollouts/987654/",
    "/jobs/987654/",
]

# The document's own 4xx status is logged by Chromium as a console error: expected on
# the unknown addresses and on pages a role may not open, not a script failure.
_OWN_STATUS = "Failed to load resource: the server responded with a status of 4"


@dataclass
class World:
    # Pages by the lowest role that has a link to them (a viewer also opens one page of
    # an admin's, to see the 403 page).
    pages: dict[str, list[str]]
    users: dict[str, User | None] = field(default_factory=dict)

    def pages_for(self, who: str) -> list[str]:
        role = {"scoped viewer": "viewer"}.get(who, who)
        ranks = ["viewer", "operator", "admin"]
        return [p for r in ranks[: ranks.index(role) + 1] for p in self.pages[r]]


@pytest.fixture(scope="session")
def axe_js():
    return axe_script()


@pytest.fixture
def world(db, monkeypatch, viewer_user, operator_user, admin_user) -> World:
    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)
    acme = make_tenant("crawl-acme", status=TenantStatus.ACTIVE, ring=0, tags={"team": "acme"})
    globex = make_tenant("crawl-globex", status=TenantStatus.ACTIVE, tags={"team": "globex"})
    release = Release.objects.create(version="2026.12.0-crawl", artifact_type="zip")
    rollout = rollouts.rollout_start(
        release=release,
        target=rollouts.Target(kind="tenants", values=[acme.slug, globex.slug]),
        strategy=rollouts.Strategy(bake_s=300),
    )
    job = Job.objects.create(
        kind="tenant_reconcile",
        subject_type="tenant",
        subject_id=acme.slug,
        status=JobStatus.SUCCEEDED,
    )
    JobStep.objects.create(
        job=job,
        position=0,
        name="function",
        label="Function",
        status=StepStatus.SUCCEEDED,
        output={"function_arn": "arn:aws:lambda:us-east-1:123456789012:function:crawl-acme"},
    )
    scoped = User.objects.create(username="sandra", role=Role.VIEWER)
    TenantScope.objects.create(user=scoped).tenants.set([acme])
    pages = {
        "viewer": [
            "/",
            "/start/",
            "/glossary/",
            f"/tenants/{acme.slug}/",
            f"/tenants/{acme.slug}/health/",
            f"/tenants/{globex.slug}/",  # not found for the scoped viewer
            f"/releases/{release.version}/",
            f"/rollouts/{rollout.pk}/",
            f"/schemas/{acme.slug}/",
            f"/jobs/{job.pk}/",
            f"/tenants/{acme.slug}/edit/",  # not allowed but to an admin
        ],
        "operator": [f"/releases/{release.version}/deploy/", "/releases/new/"],
        "admin": ["/tenants/new/", f"/tenants/{acme.slug}/offboard/", "/users/new/"],
    }
    users = {
        "anonymous": None,
        "viewer": viewer_user,
        "operator": operator_user,
        "admin": admin_user,
        "scoped viewer": scoped,
    }
    return World(pages=pages, users=users)


def _log_in(context, live_server, user: User) -> None:
    # The session of a Django test client, handed to the browser: the login form itself
    # is tested in test_login.py, and PBKDF2 would cost a second per role here.
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    context.add_cookies(
        [{"name": name, "value": client.cookies[name].value, "url": live_server.url}]
    )


class Visitor:
    """One tab for a role's crawl; what the browser reported is collected per page."""

    def __init__(self, context):
        self.page = context.new_page()
        self.page.set_default_timeout(15_000)
        self.console: list[tuple[str, str]] = []
        self.crashes: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.crashes.append(f"uncaught: {exc}"))

    def _console(self, message) -> None:
        if message.type == "error":
            self.console.append((message.text, message.location.get("url", "")))

    def check(self, path: str, *, member: bool, unknown: bool) -> list[str]:
        self.console.clear()
        self.crashes.clear()
        page = self.page
        problems: list[str] = []
        response = page.goto(path)
        status = response.status if response else 0
        if not response or status >= 500:
            problems.append(f"answered {status}")
        if member and unknown and status != 404:
            problems.append(f"an unknown address answered {status}, not 404")
        if not (response and response.headers.get("content-type", "").startswith("text/html")):
            return problems + ["not an HTML page"]
        layout = {
            "the top bar": "header.topbar",
            "the skip link": "a.skip-link[href='#main']",
            "the main landmark": "main#main",
        }
        if member:
            layout |= {"the navigation": "header nav.nav", "the footer": "footer.site-foot"}
        for what, selector in layout.items():
            if page.locator(selector).count() != 1:
                problems.append(f"not in the layout: {what} ({selector}) missing")
        # Explanations, step outputs, the tenant page's contract: their text is checked too.
        page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
        problems += axe_violations(page)
        for text, url in self.console:
            own_status = text.startswith(_OWN_STATUS) and url == page.url and status < 500
            if not own_status:
                problems.append(f"console error: {text} ({url})")
        return problems + self.crashes

    def links(self) -> list[str]:
        """The navigation's and the footer's links on this page, as paths of this site."""
        hrefs = self.page.eval_on_selector_all(
            "header a[href], footer a[href]", "els => els.map((e) => e.getAttribute('href'))"
        )
        return [urlsplit(h).path for h in hrefs if h.startswith("/") and not h.startswith("//")]


@pytest.fixture(autouse=True)
def fast_hashes(settings):
    # The role fixtures hash a password; the crawl logs in without one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.parametrize("who", ROLE_PARAMS)
def test_every_page_answers_in_the_layout_without_errors_or_serious_axe_violations(
    who, browser, live_server, aws, world, axe_js
):
    user = world.users[who]
    member = user is not None
    context = browser.new_context(base_url=live_server.url)
    context.add_init_script(path=str(axe_js))
    if member:
        _log_in(context, live_server, user)
    visitor = Visitor(context)
    problems: dict[str, list[str]] = {}
    queue = [*world.pages_for(who), *UNKNOWN] if member else ["/", "/login/", "/start/", *UNKNOWN]
    seen: set[str] = set()
    while queue:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        found = visitor.check(path, member=member, unknown=path in UNKNOWN)
        if found:
            problems[path] = found
        if path == "/":
            # What the navigation reaches, as this role sees it.
            queue += visitor.links()
    favicon = context.request.get(f"{live_server.url}/favicon.ico")
    assert favicon.ok and "svg" in favicon.headers.get("content-type", ""), favicon.status
    context.close()
    if member:
        # The crawl went where the navigation goes (not only the fixed list).
        assert {"/tenants/", "/releases/", "/rollouts/", "/schemas/", "/audit/"} <= seen
    assert problems == {}, "\n".join(
        f"{path}:\n  " + "\n  ".join(found) for path, found in problems.items()
    )

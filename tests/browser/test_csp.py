"""Every main page under the Content-Security-Policy, in Chromium: no violation reported,
no console error, htmx loaded and polling without injecting styles of its own."""

from __future__ import annotations

import pytest

from deployments.models import Release, Rollout
from opsconsole.jobs.models import Job
from tests.conftest import PASSWORD
from tests.tenants.conftest import make_tenant

pytestmark = pytest.mark.browser

# Recorded before any page script runs; Playwright's init scripts are not subject to the
# page's policy.
_RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(
    `${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`
  );
});
"""

# Resolves once htmx has swapped in the next poll's answer.
_AFTER_SWAP = """() => new Promise((resolve, reject) => {
  document.body.addEventListener("htmx:afterSettle", () => resolve(true), {once: true});
  setTimeout(() => reject(new Error("no htmx swap within 5 s")), 5000);
})"""


@pytest.fixture(autouse=True)
def fast_hashes(settings):
    # The login is not what is tested here: skip PBKDF2's deliberate second.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def console_data(db):
    tenant = make_tenant("csp-acme")
    release = Release.objects.create(version="2026.12.0", artifact_type="zip")
    rollout = Rollout.objects.create(release=release, wave_sizes=[1, 2])
    job = Job.objects.create(kind="account_check", subject_type="account", subject_id="csp")
    return tenant, release, rollout, job


def test_no_page_breaks_the_content_security_policy(
    browser, live_server, admin_user, aws, console_data
):
    tenant, release, rollout, job = console_data
    context = browser.new_context()
    context.add_init_script(_RECORD_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", admin_user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/tenants/")

    pages = [
        "/",
        "/tenants/",
        f"/tenants/{tenant.slug}/",
        f"/tenants/{tenant.slug}/health/",
        f"/tenants/{tenant.slug}/edit/",
        "/tenants/new/",
        "/tenants/attachments/",
        "/tenants/notifications/",
        "/releases/",
        f"/releases/{release.version}/",
        "/rollouts/",
        f"/rollouts/{rollout.pk}/",
        "/schemas/",
        "/audit/",
        f"/jobs/{job.pk}/",
        "/users/",
        "/account/",
        "/api/v1/docs",  # the OpenAPI page (django-ninja's Swagger UI, from static/)
    ]
    problems = {}
    for path in pages:
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.ok, (path, response and response.status)
        assert response.headers.get("content-security-policy"), path
        if path.startswith("/api/"):
            page.wait_for_selector(".swagger-ui .info")  # drawn from openapi.json by script
        else:
            assert page.evaluate("typeof htmx") == "object", path
        if path == f"/rollouts/{rollout.pk}/":
            # It polls every 2 s (as job pages do): one swap happens under the policy.
            assert page.evaluate(_AFTER_SWAP), path
        found = page.evaluate("window.__cspViolations") + errors
        # htmx was told (base.html) to add no <style> of its own.
        if page.evaluate("document.querySelectorAll('style').length"):
            found.append("a <style> element was added")
        if found:
            problems[path] = list(found)
        errors.clear()
    context.close()
    assert problems == {}, problems

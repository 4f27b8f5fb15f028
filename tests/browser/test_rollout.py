"""An operator clicks Deploy to all tenants and watches every tenant reach the new release:
Chromium, the live server, a real Celery worker on the real broker, the moto server."""

import pytest

from deployments.models import Rollout, RolloutStatus
from tenants.models import Tenant
from tests.conftest import PASSWORD
from tests.tenants.conftest import drop_tenant_databases, make_tenant, run_job

pytestmark = pytest.mark.browser

NEW = "2026.12.1"


@pytest.fixture
def browser_dbs():
    drop_tenant_databases("tenant_t5")
    yield
    drop_tenant_databases("tenant_t5")


def test_operator_deploys_to_all_tenants(
    page, live_server, operator_user, worker_factory, live_aws, browser_dbs, settings
):
    from deployments.releases import ReleaseInput, release_register
    from opsconsole.sandbox.demo_release import app_files, build_demo_release, build_zip
    from opsconsole.sandbox.seed import sandbox_seed

    sandbox_seed()
    slugs = ["t5-b0", "t5-b1", "t5-b2"]
    for slug in slugs:
        job = run_job("tenant_provision", make_tenant(slug))
        assert job.status == "succeeded", job.error
    release_register(
        ReleaseInput(
            version=NEW,
            artifact="zip",
            zip_bytes=build_zip(app_files(NEW)),
            runtime="python3.12",
            handler="app.handler",
            migration_files=[(m.name, m.sql) for m in build_demo_release().migrations],
        )
    )
    worker_factory()

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", operator_user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/releases/{NEW}/")
    page.click("text=Deploy to all tenants")
    preview = page.locator("#preview")
    assert "3</strong> tenant(s) in 3 wave(s)" in preview.inner_html()
    page.fill("input[name=bake_s]", "0")
    page.click("#rollout-start")
    # The confirmation names the release and the tenants; starting is its own click.
    assert f"Deploy {NEW} to 3 tenant(s)?" in page.locator("#confirm-start").inner_text()
    page.click("#rollout-start-confirm")
    page.wait_for_url(f"{live_server.url}/rollouts/*/")

    # The page updates itself (htmx polling) until the summary appears.
    page.locator("#rollout-summary").wait_for(timeout=90_000)
    assert page.locator("#rollout-status").inner_text() == "Succeeded"
    assert page.locator("#count-succeeded").inner_text() == "3"
    assert f"3 tenant(s) run {NEW}" in page.locator("#rollout-summary").inner_text()
    rollout = Rollout.objects.get()
    assert rollout.status == RolloutStatus.SUCCEEDED
    assert set(Tenant.objects.filter(slug__in=slugs).values_list("current_release", flat=True)) == {
        NEW
    }
    page.goto(f"{live_server.url}/tenants/")
    listing = page.locator("body").inner_text()
    assert listing.count(NEW) >= 3

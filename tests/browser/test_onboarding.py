"""An admin onboards a customer through the form and watches it come up, in Chromium,
with a real worker on the real broker against the sandbox AWS (a moto server)."""

import pytest

from tenants.models import Tenant
from tests.conftest import PASSWORD
from tests.tenants.conftest import drop_tenant_databases

pytestmark = pytest.mark.browser


@pytest.fixture
def browser_dbs():
    drop_tenant_databases("tenant_t9")
    yield
    drop_tenant_databases("tenant_t9")


def test_admin_onboards_a_tenant_and_sees_it_active(
    page, live_server, admin_user, worker, live_aws, browser_dbs
):
    from opsconsole.sandbox.seed import sandbox_seed

    sandbox_seed()
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", admin_user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.click("text=Onboard a customer")

    page.fill("input[name=name]", "Globex")
    page.fill("input[name=slug]", "t9-globex")
    page.fill("input[name=contact_email]", "ops@globex.example")
    page.fill("textarea[name=env_vars_text]", "LOG_LEVEL=debug")
    # The serverless fields are hidden until that isolation is chosen.
    assert not page.locator("input[name=serverless_max_acu]").is_visible()
    page.click("button[value=plan]")
    plan = page.locator("#plan")
    assert "opsconsole-t9-globex" in plan.inner_text()
    assert "Estimated monthly cost" in plan.inner_text()
    assert not Tenant.objects.filter(slug="t9-globex").exists()  # the plan made nothing

    page.click("#onboard-create")
    page.wait_for_url(f"{live_server.url}/tenants/t9-globex/")
    # Steps update live (htmx polling); when the job ends the page reloads once.
    page.locator(".page-head .pill-active").wait_for(timeout=90_000)
    assert page.locator(".page-head .pill").inner_text() == "Active"
    assert "execute-api" in page.locator(".facts").inner_text()
    resources = page.locator("#tenant-resources").inner_text()
    for kind in ("function", "api", "db_secret", "role", "alarm"):
        assert kind in resources
    tenant = Tenant.objects.get(slug="t9-globex")
    assert tenant.status == "active" and tenant.env_vars == {"LOG_LEVEL": "debug"}

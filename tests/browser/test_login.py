import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_login_and_see_the_tenant_list(page, live_server, admin_user):
    page.goto(f"{live_server.url}/")
    # Not logged in: the console sends us to the login page.
    assert "/login/" in page.url
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert page.locator(".error").inner_text().startswith("Your username and password")

    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/tenants/")
    assert page.locator("h1").inner_text() == "Tenants"
    assert page.locator(".empty h2").inner_text() == "No tenants yet"
    assert page.locator(".banner-sandbox").is_visible()
    nav = page.locator("nav.nav").inner_text()
    for item in ("Tenants", "Releases", "Rollouts", "Audit log", "Users"):
        assert item in nav
    # htmx is served from our own static files, not a CDN.
    assert page.evaluate("typeof htmx") == "object"
    assert page.locator("script[src*='htmx']").get_attribute("src").startswith("/static/")

    page.click("text=Log out")
    page.wait_for_url(f"{live_server.url}/login/")

"""Forms written for people and confirmations where a click can hurt (issue 16), in
Chromium: the release form shows only the chosen artifact's inputs and picks the runtime
from the zip, an error lands beside its field and asks for the file again, a pasted slug
too long is never cut short, and suspend and repair change nothing until confirmed."""

from __future__ import annotations

import re

import pytest

from opsconsole.jobs.models import Job
from opsconsole.sandbox.demo_release import app_files, build_zip
from tenants.models import Tenant, TenantStatus
from tests.browser.axe import axe_script, axe_violations
from tests.conftest import PASSWORD
from tests.tenants.conftest import make_tenant

pytestmark = pytest.mark.browser

GO_ZIP = build_zip({"bootstrap": b"\x7fELF"}, modes={"bootstrap": 0o755})
LONG_SLUG = "globex-corporation-europe-west-production-1"  # 43 characters


@pytest.fixture(autouse=True)
def fast_hashes(settings):
    # The login is not what is tested here: skip PBKDF2's deliberate second.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def page(browser):
    """A page with axe-core in it (an init script: the console's policy does not apply),
    to check the states a crawl of plain pages never reaches: a form with errors, an open
    dialog."""
    context = browser.new_context()
    context.add_init_script(path=str(axe_script()))
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def sent(monkeypatch):
    """Jobs are queued, not run: the live server's thread records what it would send."""
    from opsconsole.jobs import tasks

    queued: list[int] = []
    monkeypatch.setattr(
        tasks.job_run, "apply_async", lambda args, countdown=None: queued.append(args[0])
    )
    return queued


@pytest.fixture
def errors(page):
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: seen.append(str(exc)))
    return seen


def login(page, live_server, user) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/tenants/")


def test_the_release_form_shows_what_applies_and_keeps_nothing_silently(
    page, live_server, admin_user, errors
):
    from playwright.sync_api import expect

    login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/releases/new/")
    zip_input, image_input = page.locator("#id_zip_file"), page.locator("#id_image")
    runtime, handler = page.locator("#id_runtime"), page.locator("#id_handler")
    assert zip_input.is_visible() and runtime.is_visible() and not image_input.is_visible()
    page.check("input[name=artifact][value=image]")
    assert image_input.is_visible() and not zip_input.is_visible()
    assert not runtime.is_visible() and not page.locator("#id_archive_file").is_visible()
    page.check("input[name=artifact][value=archive]")
    assert page.locator("#id_archive_file").is_visible() and not image_input.is_visible()
    page.check("input[name=artifact][value=zip]")

    # A bootstrap at the zip's root: a custom runtime, picked as the file is chosen.
    assert (runtime.input_value(), handler.input_value()) == ("python3.12", "app.handler")
    zip_input.set_input_files({"name": "go.zip", "mimeType": "application/zip", "buffer": GO_ZIP})
    expect(runtime).to_have_value("provided.al2023")
    expect(handler).to_have_value("bootstrap")
    assert "the zip has a bootstrap at its root" in page.locator("#runtime-picked").inner_text()
    # A Python zip afterwards: back to Python, since nobody typed a runtime of their own.
    python = build_zip(app_files("2026.12.9"))
    zip_input.set_input_files({"name": "py.zip", "mimeType": "application/zip", "buffer": python})
    expect(runtime).to_have_value("python3.12")
    expect(handler).to_have_value("app.handler")
    # What the person types is theirs: another zip does not overwrite it.
    runtime.fill("python3.13")
    zip_input.set_input_files({"name": "go.zip", "mimeType": "application/zip", "buffer": GO_ZIP})
    page.wait_for_timeout(300)
    assert runtime.input_value() == "python3.13"
    zip_input.set_input_files({"name": "py.zip", "mimeType": "application/zip", "buffer": python})

    # Refused by the service (no '!' in a version): the error beside the version, the
    # zip asked for again beside its input, what was typed still there.
    page.fill("#id_version", "bad version!")
    page.click("button:has-text('Register the release')")
    page.wait_for_url(f"{live_server.url}/releases/new/")
    version_error = page.locator("#id_version_error")
    assert "letters, digits" in version_error.inner_text().lower()
    assert page.locator("#id_version").get_attribute("aria-describedby") == (
        "id_version_helptext id_version_error"
    )
    field = page.locator(".field:has(#id_zip_file)")
    assert "Choose the file again" in field.inner_text()
    assert runtime.input_value() == "python3.13" and zip_input.is_visible()
    assert not image_input.is_visible()
    assert axe_violations(page) == []
    assert errors == []


def test_a_pasted_slug_too_long_is_kept_whole_and_refused_beside_it(
    page, live_server, admin_user, sent, errors
):
    login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/tenants/new/")
    slug = page.locator("#id_slug")
    slug.focus()
    page.keyboard.insert_text(LONG_SLUG)  # as a paste: the browser applies maxlength here
    assert slug.input_value() == LONG_SLUG
    count = page.locator("#id_slug_count")
    assert "43 characters: 3 too many (at most 40)" in count.inner_text()
    assert slug.get_attribute("aria-invalid") == "true"
    page.fill("#id_name", "Globex")
    page.fill("#id_contact_email", "ops@globex.example")
    page.click("button[value=plan]")
    page.wait_for_selector("#id_slug_error")
    assert "At most 40 characters, and this one has 43." in page.inner_text("#id_slug_error")
    assert slug.input_value() == LONG_SLUG
    assert page.locator("#onboard-create").count() == 0
    assert axe_violations(page) == []
    # Shortened: the count says so, and the plan comes with the button beside it.
    slug.fill("globex")
    assert count.inner_text() == "6 of 40 characters"
    page.click("button[value=plan]")
    create = page.locator("#plan #onboard-create")
    create.wait_for()
    assert create.inner_text() == "Onboard globex" and create.is_visible()
    # The plan's tables stay inside its card.
    assert page.evaluate(
        """() => {
          const card = document.getElementById("plan").getBoundingClientRect();
          return [...document.querySelectorAll("#plan table")].every(
            (t) => t.getBoundingClientRect().right <= card.right + 0.5);
        }"""
    )
    assert not Tenant.objects.exists()
    # The button outside the form submits it (form="onboard-form"), with what it holds.
    create.click()
    page.wait_for_url(f"{live_server.url}/tenants/globex/")
    tenant = Tenant.objects.get()
    assert (tenant.slug, tenant.name) == ("globex", "Globex") and len(sent) == 1
    assert errors == []


@pytest.mark.parametrize(
    ("action", "cancel", "after"),
    [
        ("repair", "Cancel", TenantStatus.ACTIVE),
        ("suspend", "Keep it serving", TenantStatus.SUSPENDED),
    ],
)
def test_suspend_and_repair_ask_and_cancelling_changes_nothing(
    page, live_server, admin_user, aws, sent, errors, action, cancel, after
):
    tenant = make_tenant("fx-acme", status=TenantStatus.ACTIVE)
    login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/tenants/{tenant.slug}/")
    dialog = page.locator(f"#confirm-{action}")
    opener = page.locator(f"form[data-confirm=confirm-{action}] button").first
    assert not dialog.is_visible()

    opener.click()
    assert dialog.is_visible() and f"{action.title()} fx-acme?" in dialog.inner_text()
    assert axe_violations(page) == []
    dialog.locator(f"button:has-text('{cancel}')").click()
    assert not dialog.is_visible()
    page.wait_for_timeout(300)  # a request the cancel wrongly sent would land by now
    tenant.refresh_from_db()
    assert tenant.status == TenantStatus.ACTIVE and not Job.objects.exists() and sent == []
    assert page.url == f"{live_server.url}/tenants/{tenant.slug}/"

    opener.click()
    dialog.locator(f"button.primary:has-text('{action.title()}')").click()
    message = page.locator("li.msg-success")
    message.wait_for()
    job = Job.objects.get()
    assert job.subject_id == tenant.slug and sent == [job.pk]
    link = message.locator("a")
    assert link.get_attribute("href") == f"/jobs/{job.pk}/"
    assert re.fullmatch(rf"Job #{job.pk}", link.inner_text())
    tenant.refresh_from_db()
    assert tenant.status == after
    assert errors == []

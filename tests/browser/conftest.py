"""Playwright driving Debian's Chromium (/usr/bin/chromium; browsers are never downloaded).

Outside CI a missing Chromium skips these tests with a loud notice; under CI (CI=true) it
fails them, since .ci/run installs Chromium first.
"""

from __future__ import annotations

import os
import sys

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        message = f"Chromium not found at {CHROMIUM}: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (under CI the browser tests must run)")
        # Deliberate (issue 2): outside CI only, and loudly; CI installs Chromium first.
        print(f"\n!!! BROWSER TESTS SKIPPED: {message} !!!\n", file=sys.stderr)
        pytest.skip(message)
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls from the
    # test body are still synchronous and safe here.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()

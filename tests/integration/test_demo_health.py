"""End to end on the sandbox: requests sent to a tenant's API show up on its health page.

A tenant onboarded through the console (real worker, local AWS) runs the demo app; the test
sends it N requests through its HTTP API, two of which make the app fail (a note too long
for its database, which it does not catch). The health page, read as a person reads it,
then shows N invocations and N API requests in the minute they were sent, the two errors
and 5xx answers, and the log lines the app and the runtime wrote for them.
"""

from __future__ import annotations

import random
import re
import sys
import time

import pytest
from django.urls import reverse

from opsconsole.aws.clients import client as aws_client
from opsconsole.sandbox import demo_release
from opsconsole.sandbox.seed import sandbox_seed
from opsconsole.sandbox.traffic import send_demo_traffic
from tenants import naming
from tests.integration.demo_support import (
    api_url,
    call,
    drop_databases,
    onboard,
    tagged,
    tenant_db_prefix,
    wait_active,
)

pytestmark = pytest.mark.integration

REQUESTS = [
    ("GET", "/healthz", None, 200),
    ("GET", "/notes", None, 200),
    ("POST", "/notes", {"text": "from the health test"}, 201),
    ("GET", "/notes", None, 200),
    ("POST", "/notes", "{not json", 400),
    ("POST", "/notes", {"text": "x" * 1001}, 500),  # the app's unhandled error
    ("GET", "/notes", None, 200),
    ("GET", "/healthz", None, 200),
    ("POST", "/notes", {"text": "y" * 2000}, 500),  # and another
    ("GET", "/notes", None, 200),
]


@pytest.fixture
def demo_dbs():
    drop_databases(tenant_db_prefix("dh"))
    yield
    drop_databases(tenant_db_prefix("dh"))


def _legend(page: str, label: str) -> str:
    """The figure a chart's legend shows for ``label`` (its latest period)."""
    match = re.search(rf"{re.escape(label)} <span class=\"muted\">([^<]*)</span>", page)
    assert match, f"no legend {label!r} on the page"
    return match.group(1)


@pytest.mark.long  # a long scenario: `make faults` runs it, `make test` does not
def test_requests_to_the_api_are_what_the_health_page_shows(
    demo_dbs, settings, worker, admin_user, client
):
    settings.HEALTH_CACHE_SECONDS = 0
    sandbox_seed()
    client.force_login(admin_user)
    onboard(client, tagged("dh-one"), release=demo_release.DEMO_VERSION)
    [tenant] = wait_active([tagged("dh-one")], [worker])
    url = api_url(tenant)

    # Onboarding's own health checks invoked the function: start in a minute of its own.
    time.sleep(60 - time.time() % 60 + 0.5)
    minute = int(time.time() // 60)
    for method, path, body, status in REQUESTS:
        answer = call(url, method, path, body)
        assert answer.status == status, (method, path, answer)
    assert int(time.time() // 60) == minute, "the requests took more than their minute"

    page = client.get(reverse("tenants:health", args=[tenant.slug]) + "?range=1h")
    assert page.status_code == 200
    html = page.content.decode()
    n, errors = len(REQUESTS), sum(1 for *_, status in REQUESTS if status >= 500)
    assert _legend(html, "Invocations") == str(n)
    assert _legend(html, "Errors") == str(errors)
    assert _legend(html, "Requests") == str(n)
    assert _legend(html, "5xx") == str(errors)
    assert _legend(html, "4xx") == "1"
    # The log lines of the two failures: the app's own, and the runtime's traceback line.
    recent = html.split("Recent errors", 1)[1]
    assert recent.count("ERROR POST /notes unhandled error") == errors, recent[:3000]
    assert "notes_text_check" in recent
    # The demo is built for python3.12; this machine's Python stands in and the page says so.
    if sys.version_info[:2] != (3, 12):
        assert "runtime python3.12 runs on Python" in html.split("Recent errors", 1)[0]

    # The sandbox's demo traffic reaches the same app, labelled as demo traffic.
    summary = send_demo_traffic(slugs=[tenant.slug], rng=random.Random(5))
    assert summary["tenants"] == 1 and summary["unanswered"] == []
    assert {"200", "201"} <= set(summary["statuses"])
    events = aws_client("logs", tenant.region).filter_log_events(
        logGroupName=naming.log_group_name(tenant.slug)
    )["events"]
    labelled = [e for e in events if "ua=opsconsole-demo-traffic" in e["message"]]
    assert len(labelled) == summary["requests"]

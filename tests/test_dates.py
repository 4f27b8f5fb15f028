"""One date and time format across the console, with its time zone, and relative times in
the lists a person scans (issue 16): "2 Dec 2026, 04:18 UTC", "4 min ago"."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone

from deployments import rollouts
from deployments.models import Release
from opsconsole.audit.services import audit_record
from opsconsole.core.humanize import datetime_text, relative_text
from tenants.models import Tenant, TenantStatus

MOMENT = datetime(2026, 12, 2, 4, 18, 5, tzinfo=UTC)
# What the console printed before: "2026-12-02 04:04" and "Dec. 2, 2026, 4:18 a.m.".
OLD_FORMATS = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}|\b[ap]\.m\.|\b\d{2}-\d{2} \d{2}:\d{2}"
)


def test_the_absolute_format_says_its_time_zone():
    assert datetime_text(MOMENT) == "2 Dec 2026, 04:18 UTC"
    assert datetime_text(MOMENT, seconds=True) == "2 Dec 2026, 04:18:05 UTC"


@pytest.mark.parametrize(
    ("before", "text"),
    [
        (timedelta(seconds=10), "just now"),
        (timedelta(minutes=4, seconds=10), "4 min ago"),
        (timedelta(hours=3, minutes=50), "3 h ago"),
        (timedelta(days=1, hours=2), "1 day ago"),
        (timedelta(days=5), "5 days ago"),
        (timedelta(days=40), "23 Oct 2026"),
        (-timedelta(minutes=2), "in 2 min"),
    ],
)
def test_relative_times(before, text):
    assert relative_text(MOMENT - before, now=MOMENT) == text


def test_the_filters_keep_the_absolute_time_in_a_time_element(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: MOMENT + timedelta(minutes=4))
    out = Template("{% load dates %}{{ at|ago }} · {{ at|when }}").render(Context({"at": MOMENT}))
    assert out == (
        '<time datetime="2026-12-02T04:18:05+00:00" title="2 Dec 2026, 04:18:05 UTC">'
        '4 min ago</time> · <time datetime="2026-12-02T04:18:05+00:00">2 Dec 2026, 04:18 UTC'
        "</time>"
    )


def test_a_date_printed_without_a_format_uses_the_consoles():
    # The tenant templates other people are editing get it too, until they use |when.
    out = Template("{{ at }} | {{ at|date }} | {{ at|date:'SHORT_DATETIME_FORMAT' }}").render(
        Context({"at": MOMENT})
    )
    assert out == "2 Dec 2026, 04:18 UTC | 2 Dec 2026 | 2 Dec 2026, 04:18 UTC"


def _visible(html: str) -> str:
    """The page's text (attributes hold ISO datetimes on purpose)."""
    return re.sub(r"<[^>]+>", " ", html)


def test_pages_use_one_format_and_lists_say_how_long_ago(client_for, admin_user, monkeypatch, aws):
    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)
    release = Release.objects.create(version="2026.12.0", artifact_type="zip")
    Tenant.objects.create(
        name="HE dates", slug="he-dates", status=TenantStatus.ACTIVE, current_release="x"
    )
    rollout = rollouts.rollout_start(
        release=release,
        target=rollouts.Target(kind="tenants", values=["he-dates"]),
        strategy=rollouts.Strategy(bake_s=0),
    )
    rollouts.rollout_advance(rollout.pk)
    job = rollout.deployments.get().job
    audit_record(request=None, action="rollout.start", obj=rollout, actor=admin_user)
    c = client_for(admin_user)
    lists = ["/rollouts/", "/audit/", "/releases/", "/tenants/"]
    details = [f"/rollouts/{rollout.pk}/", f"/releases/{release.version}/", f"/jobs/{job.pk}/"]
    for url in lists + details + ["/schemas/", "/tenants/he-dates/health/"]:
        response = c.get(url)
        assert response.status_code == 200, url
        text = _visible(response.content.decode())
        assert not OLD_FORMATS.search(text), (url, OLD_FORMATS.search(text))
    for url in lists:
        page = c.get(url).content.decode()
        assert re.search(r'<time datetime="[^"]+" title="[^"]+ UTC">just now</time>', page), url
    for url in details:
        assert re.search(
            r"<time datetime=\"[^\"]+\">\d+ \w{3} \d{4}, \d\d:\d\d(:\d\d)? UTC<",
            c.get(url).content.decode(),
        ), url

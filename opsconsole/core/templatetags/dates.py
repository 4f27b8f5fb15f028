"""{% load dates %}: the console's one date format, relative times and durations.

{{ job.created_at|when }}            <time datetime="...">2 Dec 2026, 04:18 UTC</time>
{{ run.started_at|when:"seconds" }}  ... 04:18:05 UTC
{{ event.at|ago }}                   <time ... title="2 Dec 2026, 04:18 UTC">4 min ago</time>
{{ rollout.created_at|when_text }}   the text alone (titles, attributes)
{{ summary.duration|duration }}      55 s · 3 min 12 s
"""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.html import format_html

from opsconsole.core.humanize import datetime_text, duration_text, local_time, relative_text

register = template.Library()


def _iso(value: datetime) -> str:
    return local_time(value).isoformat(timespec="seconds")


@register.filter
def when(value, arg: str = ""):
    """The absolute time in a <time> element (machine-readable datetime attribute)."""
    if not isinstance(value, datetime):
        return ""
    return format_html(
        '<time datetime="{}">{}</time>',
        _iso(value),
        datetime_text(value, seconds=arg == "seconds"),
    )


@register.filter
def when_text(value, arg: str = ""):
    if not isinstance(value, datetime):
        return ""
    return datetime_text(value, seconds=arg == "seconds")


@register.filter
def ago(value):
    """'4 min ago' for lists a person scans; the absolute time is the element's title
    (a hover or a screen reader gets it) and its datetime attribute."""
    if not isinstance(value, datetime):
        return ""
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        _iso(value),
        datetime_text(value, seconds=True),
        relative_text(value),
    )


@register.filter
def duration(value):
    return duration_text(value)

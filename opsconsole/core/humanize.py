"""Dates, times and durations as the console writes them, in one place.

One absolute format everywhere ("2 Dec 2026, 04:18 UTC"), with the time zone always
said: operators compare console times with CloudWatch, logs and each other's messages, and
a time without its zone is a guess. Lists a person scans say how long ago
("4 min ago") and keep the absolute time in the ``<time>`` element's title.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.dateformat import format as date_format

# PHP-style formats of django.utils.dateformat; T is the zone's abbreviation ("UTC").
DATETIME = "j M Y, H:i T"
DATETIME_SECONDS = "j M Y, H:i:s T"
DATE = "j M Y"


def local_time(value: datetime) -> datetime:
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return timezone.localtime(value)


def datetime_text(value: datetime | None, *, seconds: bool = False) -> str:
    """'2 Dec 2026, 04:18 UTC' (with ':05' seconds when ``seconds``)."""
    if value is None:
        return ""
    return date_format(local_time(value), DATETIME_SECONDS if seconds else DATETIME)


def duration_text(value: timedelta | float | int | None) -> str:
    """A duration rounded for people: '0.4 s', '55 s', '3 min 12 s', '2 h 5 min', '3 d 4 h'.

    Precision shrinks as the duration grows: nobody reading '2 h 5 min' wants the seconds.
    """
    if value is None:
        return ""
    total = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if total < 0:
        total = 0.0
    if total < 10:
        # Below 10 s a tenth still tells two fast steps apart; '0 s' would say nothing.
        return f"{total:.1f} s".replace(".0 s", " s")
    whole = int(round(total))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def relative_text(value: datetime | None, *, now: datetime | None = None) -> str:
    """'just now', '4 min ago', '3 h ago', '5 days ago', 'in 2 min'; past a month the date
    itself ('2 Dec 2026'), which reads better than '47 days ago'."""
    if value is None:
        return ""
    now = now or timezone.now()
    delta = (now - value).total_seconds()
    future = delta < 0
    seconds = abs(delta)
    if seconds < 45:
        return "just now" if not future else "in a moment"
    if seconds < 3600:
        amount = f"{max(1, round(seconds / 60))} min"
    elif seconds < 86400:
        amount = f"{int(seconds // 3600)} h"
    elif seconds < 30 * 86400:
        days = int(seconds // 86400)
        amount = f"{days} day" if days == 1 else f"{days} days"
    else:
        return date_format(local_time(value), DATE)
    return f"in {amount}" if future else f"{amount} ago"

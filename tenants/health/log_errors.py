"""The last error lines of a tenant function's log group."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from opsconsole.aws import logs
from tenants import naming
from tenants.health.cache import Cached, cached_fetch
from tenants.models import Tenant

LINES = 20
# Look back this far, widening only while fewer than LINES were found: the newest errors
# come from a narrow window even when a burst wrote thousands.
WINDOWS_S = (15 * 60, 3600, 86400)
_WINDOW_LABELS = {900: "15 minutes", 3600: "hour", 86400: "day"}


@dataclass(frozen=True)
class ErrorLine:
    at: datetime
    stream: str
    message: str


@dataclass(frozen=True)
class ErrorLines:
    lines: list[ErrorLine]  # newest first
    window_s: int
    complete: bool  # False: more matches than were read; newer ones may exist

    @property
    def window_label(self) -> str:
        return _WINDOW_LABELS.get(self.window_s, f"{self.window_s} s")


def _fetch(group: str, region: str) -> ErrorLines:
    end_ms = int(time.time() * 1000)
    events: list[dict] = []
    complete = True
    window = WINDOWS_S[-1]
    for window in WINDOWS_S:
        events, complete = logs.recent_events(
            name=group,
            pattern=settings.HEALTH_ERROR_LOG_PATTERN,
            start_ms=end_ms - window * 1000,
            end_ms=end_ms,
            keep=LINES,
            region=region,
        )
        if len(events) >= LINES or not complete:
            break
    lines = [
        ErrorLine(
            at=datetime.fromtimestamp(e["timestamp"] / 1000, UTC),
            stream=e.get("logStreamName", ""),
            message=e.get("message", "").rstrip()[:2000],
        )
        for e in reversed(events)
    ]
    return ErrorLines(lines=lines, window_s=window, complete=complete)


def recent_errors(tenant: Tenant, *, force: bool = False) -> Cached[ErrorLines]:
    group = naming.log_group_name(tenant.slug)
    return cached_fetch(
        f"health:errors:{tenant.region}:{tenant.slug}",
        lambda: _fetch(group, tenant.region),
        force=force,
    )

"""Backup and maintenance windows that touch, as RDS takes them.

moto refuses a backup window that ends when the maintenance window starts (``03:00-04:00``
with ``mon:04:00-mon:05:00``: "must not overlap"); RDS accepts it, windows only must not
share a minute. Patched here: moto's check runs as before, and its overlap verdict is
kept only when the windows really share a minute (the daily backup window against the
weekly maintenance window's times, across midnight too).
"""

from __future__ import annotations

import re
from typing import Any

from moto.rds import models
from werkzeug.wrappers import Request, Response

_OVERLAP = "The backup window and maintenance window must not overlap."
_BACKUP = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_MAINTENANCE = re.compile(r"^[a-z]{3}:(\d{2}):(\d{2})-[a-z]{3}:(\d{2}):(\d{2})$")
DAY = 1440

_installed = False


def _span(h1: str, m1: str, h2: str, m2: str) -> tuple[int, int]:
    start, end = int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)
    return start, (end - start) % DAY or DAY


def share_a_minute(maintenance_window: str, backup_window: str) -> bool | None:
    """Whether the windows' times of day share a minute; None when either is malformed."""
    backup = _BACKUP.match(backup_window or "")
    maintenance = _MAINTENANCE.match((maintenance_window or "").lower())
    if not backup or not maintenance:
        return None
    b_start, b_length = _span(*backup.groups())
    m_start, m_length = _span(*maintenance.groups())
    return any(
        b_start + shift < m_start + m_length and m_start < b_start + shift + b_length
        for shift in (-DAY, 0, DAY)
    )


def install(config: Any = None) -> None:
    global _installed
    if _installed:
        return
    _installed = True
    original = models.valid_preferred_maintenance_window

    def valid_preferred_maintenance_window(maintenance_window: Any, backup_window: Any) -> Any:
        message = original(maintenance_window, backup_window)
        if message == _OVERLAP and share_a_minute(maintenance_window, backup_window) is False:
            return original(maintenance_window, None)
        return message

    models.valid_preferred_maintenance_window = valid_preferred_maintenance_window


def route(request: Request) -> Response | None:
    return None

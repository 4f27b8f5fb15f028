"""Readings only a worker takes: numbers that need a tenant database or a master secret.

The web process holds no database credentials and opens no tenant database connection, so
a page never takes such a reading itself. It shows the last one a worker stored (with its
age) or "reading…", and when that is missing or older than ``fresh_s`` it asks a worker for
a new one: a Celery task sent by name after the request's transaction commits, at most once
per key every ASK_SECONDS however many people look. Workers store what they read with
``reading_take``; a failure is kept beside the last good value, so the page can say both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from tenants.health.cache import describe_error

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Tests move time forward by replacing this.
clock: Callable[[], float] = time.time

# A page asks again after this long when no worker answered (a worker down, a full queue).
ASK_SECONDS = 30


@dataclass(frozen=True)
class Reading(Generic[T]):
    """What a worker last read under a key: ``value`` (None: nothing read yet) and when."""

    value: T | None
    read_at: float | None
    error: str = ""  # why the latest attempt failed (the value, if any, is older)
    asked: bool = False  # this call asked a worker for a new reading

    @property
    def age_s(self) -> int | None:
        if self.read_at is None:
            return None
        return max(0, int(clock() - self.read_at))

    @property
    def age(self) -> str:
        """For people: "2 min", as in "read 2 min ago"."""
        from tenants.health.report import age_text

        return age_text(self.age_s)

    @property
    def pending(self) -> bool:
        """Nothing to show yet and nothing went wrong: a worker is on its way."""
        return self.value is None and not self.error


def _entry(key: str) -> dict:
    try:
        return cache.get(key) or {}
    except Exception:  # noqa: BLE001 - a cache outage shows "reading…", never a 500
        logger.warning("reading cache read failed for %s", key, exc_info=True)
        return {}


def _put(key: str, entry: dict) -> None:
    try:
        cache.set(key, entry, timeout=settings.HEALTH_STALE_SECONDS)
    except Exception:  # noqa: BLE001
        logger.warning("reading cache write failed for %s", key, exc_info=True)


def _ask(key: str, task: str, args: list[Any]) -> bool:
    try:
        first = bool(cache.add(f"{key}:asked", 1, timeout=ASK_SECONDS))
    except Exception:  # noqa: BLE001 - without the cache there is nothing to show either
        first = True
    if first:
        transaction.on_commit(lambda: _send(task, args))
    return first


def _send(task: str, args: list[Any]) -> None:
    from celery import current_app

    try:
        # By name: services never import task modules (the arrows point one way). No
        # publish retries: a page must not wait on the broker; the next one asks again.
        current_app.send_task(task, args=args, retry=False)
    except Exception:  # noqa: BLE001 - a broker outage costs the reading, not the page
        logger.warning("could not ask a worker for %s%s", task, tuple(args), exc_info=True)


def reading_get(key: str, *, fresh_s: int, task: str, args: list[Any]) -> Reading:
    """The stored reading under ``key``; asks ``task(*args)`` for a new one when it is
    missing or older than ``fresh_s``. Never reads anything itself."""
    entry = _entry(key)
    checked = max(entry.get("at") or 0, entry.get("failed_at") or 0)
    asked = False
    if not entry or clock() - checked >= fresh_s:
        asked = _ask(key, task, args)
    return Reading(entry.get("value"), entry.get("at"), entry.get("error", ""), asked)


def reading_previous(key: str) -> tuple[Any, float | None]:
    """The value stored now and when (a worker's rates need the previous sample)."""
    entry = _entry(key)
    return entry.get("value"), entry.get("at")


def reading_take(key: str, read: Callable[[], T]) -> Reading[T]:
    """Worker side: run ``read()`` and store its value, or its failure beside the last good
    value. Returns what was stored."""
    entry = _entry(key)
    now = clock()
    try:
        value = read()
    except Exception as exc:  # noqa: BLE001 - the page shows the reason
        message = describe_error(exc)
        logger.warning("reading %s failed: %s", key, message)
        entry = {**entry, "error": message, "failed_at": now}
        _put(key, entry)
        return Reading(entry.get("value"), entry.get("at"), message)
    _put(key, {"value": value, "at": now, "error": ""})
    return Reading(value, now)

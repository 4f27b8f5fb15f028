"""Cached reads for the health pages: fresh for a minute, the last good answer kept longer.

Every AWS read of a health page goes through ``cached_fetch``. Within HEALTH_CACHE_SECONDS
a page costs no AWS call at all. After that the first viewer refreshes (others meanwhile
get the previous answer: one refresh per key at a time). When the refresh fails, CloudWatch
throttling included, the page gets the last good answer with its age and the reason, and
nobody asks AWS again for HEALTH_RETRY_SECONDS. A broken cache (Redis down) only costs
the caching: the read goes to AWS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.conf import settings
from django.core.cache import cache

from opsconsole.aws.errors import AwsError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Tests move time forward by replacing this.
clock: Callable[[], float] = time.time

_LOCK_SECONDS = 30


@dataclass(frozen=True)
class Cached(Generic[T]):
    """A value and when it was fetched. ``error`` says why it is not fresh (or missing)."""

    value: T | None
    fetched_at: float | None
    error: str = ""
    refreshed: bool = False  # this call fetched the value (it cost AWS calls)

    @property
    def age_s(self) -> int | None:
        if self.fetched_at is None:
            return None
        return max(0, int(clock() - self.fetched_at))

    @property
    def stale(self) -> bool:
        return bool(self.error) and self.value is not None


# The services behind the operations the health pages call.
_SERVICES = {
    "GetMetricData": "CloudWatch",
    "DescribeAlarms": "CloudWatch",
    "FilterLogEvents": "CloudWatch Logs",
    "GetFunction": "Lambda",
    "GetFunctionConfiguration": "Lambda",
}


def describe_error(exc: BaseException) -> str:
    """A short sentence for a page note."""
    if isinstance(exc, AwsError):
        if exc.throttled:
            return f"AWS is throttling {exc.operation or 'the request'} ({exc.code})"
        if "<html" in exc.message.lower():
            # An HTML error page as the message (a 500 from a proxy or the moto server):
            # say who answered what, not the page's markup.
            service = _SERVICES.get(exc.operation, "AWS")
            return f"{service} answered HTTP {exc.code or 'error'} to {exc.operation or 'a call'}"
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:240]


def _get(key: str):
    try:
        return cache.get(key)
    except Exception:  # noqa: BLE001 - a cache outage must not take the page down
        logger.warning("health cache read failed for %s", key, exc_info=True)
        return None


def _set(key: str, value, timeout: int) -> None:
    try:
        cache.set(key, value, timeout=timeout)
    except Exception:  # noqa: BLE001
        logger.warning("health cache write failed for %s", key, exc_info=True)


def _claim(key: str) -> bool:
    try:
        return bool(cache.add(key, 1, timeout=_LOCK_SECONDS))
    except Exception:  # noqa: BLE001
        return True


def _release(key: str) -> None:
    try:
        cache.delete(key)
    except Exception:  # noqa: BLE001
        logger.warning("health cache delete failed for %s", key, exc_info=True)


def cached_fetch(
    key: str, fetch: Callable[[], T], *, force: bool = False, retry_s: int | None = None
) -> Cached[T]:
    """``fetch()``'s value, from the cache while fresh (``force`` skips that).

    Never raises for a failing ``fetch``: the result then carries the last good value (or
    None) and ``error``, and the key is not fetched again for ``retry_s`` seconds
    (HEALTH_RETRY_SECONDS by default).
    """
    now = clock()
    entry = _get(key)
    fresh_for = settings.HEALTH_CACHE_SECONDS
    if entry is not None and not force and now - entry["at"] < fresh_for:
        return Cached(entry["value"], entry["at"])
    failure = _get(f"{key}:failed")
    if failure is not None and not force:
        # A refresh failed moments ago: do not hammer a throttling API from every page.
        return Cached(entry["value"] if entry else None, entry["at"] if entry else None, failure)
    lock = f"{key}:lock"
    locked = entry is not None and not force
    if locked and not _claim(lock):
        # Another request is refreshing this key right now: the previous answer will do.
        return Cached(entry["value"], entry["at"])
    try:
        value = fetch()
    except Exception as exc:  # noqa: BLE001 - a page shows the reason, never a 500
        message = describe_error(exc)
        if not isinstance(exc, AwsError):
            logger.warning("health read %s failed", key, exc_info=True)
        _set(f"{key}:failed", message, retry_s or settings.HEALTH_RETRY_SECONDS)
        return Cached(entry["value"] if entry else None, entry["at"] if entry else None, message)
    finally:
        if locked:
            _release(lock)
    _set(key, {"value": value, "at": now}, settings.HEALTH_STALE_SECONDS)
    return Cached(value, now, refreshed=True)

"""The fleet's numbers as the refresh worker leaves them, and the marks the fleet page
leaves for the worker. No AWS here: the page reads and writes only this module.

Per (AWS account, region), a *group*, two cache entries:

- ``alarms``: the console's alarms in ALARM, by tenant slug, with when they were read;
- ``metrics``: invocations, errors and p95 duration over the last hour for the tenants
  someone looked at, each with when it was read (a tenant nobody looked at has no entry:
  "not fetched yet").

A page marks the tenants it showed (``fleet_watch``: one key per tenant, so two pages
never overwrite each other's marks); the worker reads the marks (``watched``) and asks
CloudWatch for those tenants' numbers only. A mark lasts three refresh intervals, so a
page that polls keeps its rows fetched and a closed page stops costing anything soon.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache

from tenants.health import cache as health_cache

logger = logging.getLogger(__name__)

OWN_ACCOUNT = "own"
# cache.get_many/set_many per round trip: 20,000 marks are read in 20 of them.
_CHUNK = 1000


def group_key(account_id: int | None, region: str) -> str:
    """A group's name in cache keys: the AwsAccount row's id (or "own") and the region."""
    return f"{account_id or OWN_ACCOUNT}:{region}"


def alarms_key(group: str) -> str:
    return f"health:fleet:alarms:{group}"


def metrics_key(group: str) -> str:
    return f"health:fleet:metrics:{group}"


def _seen_key(slug: str) -> str:
    return f"health:fleet:seen:{slug}"


def watch_seconds() -> int:
    # Three intervals: a poll that comes a little late does not let the rows go dark.
    return 3 * settings.HEALTH_FLEET_REFRESH_SECONDS


@dataclass
class AlarmsEntry:
    """The console's alarms in ALARM in one group. ``at`` None: never read."""

    alarms: dict[str, list[str]] = field(default_factory=dict)
    at: float | None = None
    error: str = ""


@dataclass
class MetricsEntry:
    """Last-hour numbers of the watched tenants of one group. Flat dicts of floats by
    slug, so an entry unpickles into a handful of objects however many tenants it holds.
    A slug in ``at`` without a number had no datapoint (no traffic)."""

    inv: dict[str, float] = field(default_factory=dict)
    err: dict[str, float] = field(default_factory=dict)
    at: dict[str, float] = field(default_factory=dict)
    p95: dict[str, float] = field(default_factory=dict)
    p95_at: dict[str, float] = field(default_factory=dict)
    error: str = ""
    p95_error: str = ""
    # When the percentile call last failed: it is not asked again for
    # HEALTH_PERCENTILE_RETRY_SECONDS (a failing percentile usually keeps failing).
    p95_failed_at: float | None = None


def _get_many(keys: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    try:
        for i in range(0, len(keys), _CHUNK):
            found.update(cache.get_many(keys[i : i + _CHUNK]))
    except Exception:  # noqa: BLE001 - a cache outage leaves the page without numbers, not down
        logger.warning("fleet cache read failed", exc_info=True)
    return found


def _set_many(values: dict[str, Any], timeout: int) -> None:
    try:
        items = list(values.items())
        for i in range(0, len(items), _CHUNK):
            cache.set_many(dict(items[i : i + _CHUNK]), timeout=timeout)
    except Exception:  # noqa: BLE001
        logger.warning("fleet cache write failed", exc_info=True)


def read_groups(groups: list[str]) -> dict[str, tuple[AlarmsEntry, MetricsEntry]]:
    """Both entries of every group (empty ones where nothing was stored): one round trip."""
    keys = [k for g in groups for k in (alarms_key(g), metrics_key(g))]
    found = _get_many(keys)
    return {
        g: (found.get(alarms_key(g)) or AlarmsEntry(), found.get(metrics_key(g)) or MetricsEntry())
        for g in groups
    }


def write_alarms(group: str, entry: AlarmsEntry) -> None:
    _set_many({alarms_key(group): entry}, settings.HEALTH_STALE_SECONDS)


def write_metrics(group: str, entry: MetricsEntry) -> None:
    _set_many({metrics_key(group): entry}, settings.HEALTH_STALE_SECONDS)


def fleet_watch(slugs: list[str]) -> None:
    """The page showed these tenants: the worker fetches their numbers for a while."""
    if slugs:
        now = health_cache.clock()
        _set_many({_seen_key(slug): now for slug in slugs}, watch_seconds())


def watched(slugs: list[str]) -> list[str]:
    """Those of ``slugs`` a page showed within ``watch_seconds``, in order."""
    found = _get_many([_seen_key(slug) for slug in slugs])
    horizon = health_cache.clock() - watch_seconds()
    return [s for s in slugs if (found.get(_seen_key(s)) or 0) >= horizon]

"""The fleet's numbers as the refresh worker leaves them, and the marks the fleet page
leaves for the worker. No AWS here: the page reads and writes only this module.

Per tenant, a ``FleetHealth`` row (tenants.models): its alarms in ALARM, missing records,
invocations, errors and p95 duration over the last hour with when they were read (none
for a tenant nobody looked at: "not fetched yet"), and the verdict of those. The page
sorts, filters, counts and pages on its columns in SQL.

Per (AWS account, region), a *group*, two small cache entries the page's notes read:

- ``alarms``: the console's alarms in ALARM, by tenant slug, with when they were read, or
  why the last read failed;
- ``metrics``: why the last metric read failed, and how old the oldest numbers kept are.

A page marks the tenants it showed (``fleet_watch``: one key per tenant, so two pages
never overwrite each other's marks); the worker reads the marks (``watched``) and asks
CloudWatch for those tenants' numbers only. A mark lasts three refresh intervals, so a
page that polls keeps its rows fetched and a closed page stops costing anything soon.
"""

from __future__ import annotations

import logging
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache

from tenants.health import cache as health_cache
from tenants.models import FleetHealth

logger = logging.getLogger(__name__)

OWN_ACCOUNT = "own"
# Without one of these a tenant cannot serve: missing, it is down.
CRITICAL_KINDS = {"function", "alias", "api", "database", "db_instance", "db_cluster"}
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
    """How the group's last metric reads went (the numbers are in the rows)."""

    error: str = ""
    p95_error: str = ""
    # When the percentile call last failed: it is not asked again for
    # HEALTH_PERCENTILE_RETRY_SECONDS (a failing percentile usually keeps failing).
    p95_failed_at: float | None = None
    # When the oldest numbers kept were read (a failed read says how old they are).
    oldest_at: float | None = None


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
    """A page showed these tenants: the worker fetches their numbers for a while."""
    if slugs:
        now = health_cache.clock()
        _set_many({_seen_key(slug): now for slug in slugs}, watch_seconds())


def watched(slugs: list[str]) -> list[str]:
    """Those of ``slugs`` a page showed within ``watch_seconds``, in order."""
    found = _get_many([_seen_key(slug) for slug in slugs])
    horizon = health_cache.clock() - watch_seconds()
    return [s for s in slugs if (found.get(_seen_key(s)) or 0) >= horizon]


# --- the rows ------------------------------------------------------------------------------


def stamp(at: float | None) -> datetime | None:
    """A clock reading (tenants.health.cache.clock) as the rows keep it."""
    return None if at is None else datetime.fromtimestamp(at, UTC)


def seconds(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


@dataclass(slots=True)
class HealthRow:
    """What a FleetHealth row holds, as the worker computes it (times as clock readings)."""

    signals_rank: int
    alarms: list[str]
    missing: list[list[str]]
    unavailable: str = ""
    invocations: float | None = None
    errors: float | None = None
    error_rate: float | None = None
    metrics_at: float | None = None
    p95_ms: float | None = None
    p95_at: float | None = None


_ROW_FIELDS = tuple(HealthRow.__dataclass_fields__)
_TIMES = ("metrics_at", "p95_at")


def read_rows(tenant_ids: list[int]) -> dict[int, HealthRow]:
    """The rows of these tenants (one query per 5,000 of them)."""
    rows: dict[int, HealthRow] = {}
    for i in range(0, len(tenant_ids), 5000):
        found = FleetHealth.objects.filter(tenant_id__in=tenant_ids[i : i + 5000]).values_list(
            "tenant_id", *_ROW_FIELDS
        )
        for tenant_id, *values in found:
            row = HealthRow(*values)
            row.metrics_at, row.p95_at = seconds(values[7]), seconds(values[9])
            rows[tenant_id] = row
    return rows


def _as_stored(row: HealthRow) -> HealthRow:
    """``row`` as it reads back (times to the microsecond), so an unchanged row compares
    equal and is not written again."""
    stored = HealthRow(*astuple(row))
    stored.metrics_at, stored.p95_at = seconds(stamp(row.metrics_at)), seconds(stamp(row.p95_at))
    return stored


def write_rows(rows: dict[int, HealthRow], before: dict[int, HealthRow]) -> int:
    """Store the rows that differ from ``before`` (most do not between two rounds: only
    the watched tenants' numbers and the alarms that changed). Returns how many."""
    changed = [
        FleetHealth(
            tenant_id=tenant_id,
            **{
                name: stamp(value) if name in _TIMES else value
                for name, value in zip(_ROW_FIELDS, astuple(row), strict=True)
            },
        )
        for tenant_id, row in rows.items()
        if before.get(tenant_id) != _as_stored(row)
    ]
    FleetHealth.objects.bulk_create(
        changed,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["tenant"],
        update_fields=list(_ROW_FIELDS),
    )
    return len(changed)

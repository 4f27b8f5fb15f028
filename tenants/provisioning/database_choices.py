"""A tenant's database choices: engine version, Multi-AZ, backup and maintenance windows and
Aurora's auto-pause.

Checked before they are stored (``database_choice_problems``), described for the plan
(``database_plan``) and turned into RDS arguments for ``database_instance`` and
``database_cluster`` (``engine_change``, ``window_changes``, ``choice_pairs``).

An engine upgrade is a deliberate act: only a version the tenant names is applied, only
upwards, and in the tenant's maintenance window (it restarts the database). A blank version
means the console's default at creation and nothing afterwards, so changing the default
never upgrades a running tenant. A newer engine than asked for (RDS's automatic minor
upgrades) is reported, never "corrected": RDS cannot downgrade.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.conf import settings
from django.core.cache import cache

from opsconsole.aws import rds
from opsconsole.aws.errors import AwsError
from tenants import resources
from tenants.models import Isolation, Tenant
from tenants.provisioning.database_common import POSTGRES_ENGINE, setting

logger = logging.getLogger(__name__)

AURORA_ENGINE = "aurora-postgresql"
ENGINE_VERSIONS_CACHE_S = 300
AUTO_PAUSE_MIN_S, AUTO_PAUSE_MAX_S = 300, 86400
# What Aurora does at 0 ACU when the tenant leaves the delay blank.
AWS_DEFAULT_AUTO_PAUSE_S = 300
MIN_WINDOW = 30
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY, WEEK = 1440, 7 * 1440
_BACKUP_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_MAINTENANCE_RE = re.compile(r"^([a-z]{3}):(\d{2}):(\d{2})-([a-z]{3}):(\d{2}):(\d{2})$")
_VERSION_RE = re.compile(r"^\d+(\.\d+){0,2}$")


def engine_for(tenant: Tenant) -> str | None:
    """The RDS engine of the tenant's own database; None when it has none of its own."""
    if tenant.isolation == Isolation.DEDICATED:
        return POSTGRES_ENGINE
    if tenant.isolation == Isolation.SERVERLESS:
        return AURORA_ENGINE
    return None


def wanted_version(tenant: Tenant) -> str:
    """The version a new database is created with: the tenant's, else the console's."""
    if tenant.db_engine_version:
        return tenant.db_engine_version
    name = "TENANT_AURORA_ENGINE_VERSION" if tenant.isolation == Isolation.SERVERLESS else None
    return setting(name or "TENANT_DB_ENGINE_VERSION")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", (version or "").split("-")[0]))


def engine_versions(region: str, engine: str) -> list[str]:
    """The versions RDS offers for ``engine`` in ``region``, oldest first (cached a few
    minutes: the form lists them on every render)."""
    key = f"rds-engine-versions:{settings.AWS_ENDPOINT_URL}:{region}:{engine}"
    found = cache.get(key)
    if found is None:
        offered = rds.describe_db_engine_versions(engine=engine, region=region)
        found = sorted(set(offered), key=version_key)
        cache.set(key, found, ENGINE_VERSIONS_CACHE_S)
    return list(found)


# --- windows ---------------------------------------------------------------------------


def _clock(hours: str, minutes: str) -> int | None:
    h, m = int(hours), int(minutes)
    return h * 60 + m if h < 24 and m < 60 else None


def backup_window(text: str) -> tuple[int, int] | str:
    """``hh:mm-hh:mm`` (UTC, daily) as (start, length) in minutes; a reason when invalid."""
    match = _BACKUP_RE.match(text)
    if not match:
        return f"backup window {text!r}: hh:mm-hh:mm in UTC, e.g. 03:00-04:00"
    start, end = _clock(*match.group(1, 2)), _clock(*match.group(3, 4))
    if start is None or end is None:
        return f"backup window {text!r}: hours 00-23, minutes 00-59"
    length = (end - start) % DAY
    if length < MIN_WINDOW:
        return f"backup window {text!r}: at least {MIN_WINDOW} minutes"
    return start, length


def maintenance_window(text: str) -> tuple[int, int] | str:
    """``ddd:hh:mm-ddd:hh:mm`` (UTC, weekly) as (start in the week, length) in minutes."""
    match = _MAINTENANCE_RE.match(text.lower())
    if not match or match.group(1) not in DAYS or match.group(4) not in DAYS:
        return f"maintenance window {text!r}: ddd:hh:mm-ddd:hh:mm in UTC, e.g. mon:04:00-mon:05:00"
    start_clock, end_clock = _clock(*match.group(2, 3)), _clock(*match.group(5, 6))
    if start_clock is None or end_clock is None:
        return f"maintenance window {text!r}: hours 00-23, minutes 00-59"
    start = DAYS.index(match.group(1)) * DAY + start_clock
    end = DAYS.index(match.group(4)) * DAY + end_clock
    length = (end - start) % WEEK
    if length < MIN_WINDOW:
        return f"maintenance window {text!r}: at least {MIN_WINDOW} minutes"
    if length > DAY:
        return f"maintenance window {text!r}: at most 24 hours"
    return start, length


def windows_overlap(backup: tuple[int, int], maintenance: tuple[int, int]) -> bool:
    """Whether the daily backup window and the weekly maintenance window share a minute
    (touching ends do not)."""
    m_start, m_length = maintenance
    for day in range(7):
        b_start = day * DAY + backup[0]
        # Shifted a week each way: Sunday's backups meet a Monday window after midnight.
        for shift in (-WEEK, 0, WEEK):
            start = m_start + shift
            if b_start < start + m_length and start < b_start + backup[1]:
                return True
    return False


# --- validation ------------------------------------------------------------------------


def _recorded_version(tenant: Tenant) -> str:
    kind = "db_cluster" if tenant.isolation == Isolation.SERVERLESS else "db_instance"
    record = resources.find(tenant, kind=kind) if tenant.pk else None
    return (record.details.get("engine_version") or "") if record else ""


def downgrade_reason(wanted: str, have: str) -> str | None:
    if wanted and have and version_key(wanted) < version_key(have):
        return (
            f"engine version {wanted}: the database runs {have} and RDS cannot downgrade "
            f"(choose {have} or later)"
        )
    return None


def _version_problems(tenant: Tenant, engine: str) -> list[str]:
    version = tenant.db_engine_version
    if not _VERSION_RE.match(version):
        return [f"engine version {version!r}: like 16.4"]
    try:
        offered = engine_versions(tenant.region, engine)
    except AwsError as exc:
        return [f"engine version {version}: could not list what RDS offers ({exc})"]
    if version not in offered:
        return [
            f"engine version {version}: RDS offers {engine} "
            + (", ".join(offered) or "no version")
            + f" in {tenant.region}"
        ]
    reason = downgrade_reason(version, _recorded_version(tenant))
    return [reason] if reason else []


def database_choice_problems(tenant: Tenant) -> list[str]:
    """Why the tenant's database choices cannot be stored (empty: they can). Reads RDS's
    list of engine versions (cached) when a version is given."""
    engine = engine_for(tenant)
    chosen = {
        "engine version": tenant.db_engine_version,
        "Multi-AZ": tenant.db_multi_az,
        "backup window": tenant.db_backup_window,
        "maintenance window": tenant.db_maintenance_window,
        "auto-pause": tenant.serverless_seconds_until_auto_pause,
    }
    if engine is None:
        return [
            f"{what}: only for a dedicated instance or an Aurora cluster"
            for what, value in chosen.items()
            if value not in ("", None, False)
        ]
    problems = _version_problems(tenant, engine) if tenant.db_engine_version else []
    if tenant.db_multi_az and tenant.isolation != Isolation.DEDICATED:
        problems.append("Multi-AZ: only for a dedicated instance")
    backup = maintenance = None
    if tenant.db_backup_window:
        backup = backup_window(tenant.db_backup_window)
        if isinstance(backup, str):
            problems.append(backup)
    if tenant.db_maintenance_window:
        maintenance = maintenance_window(tenant.db_maintenance_window)
        if isinstance(maintenance, str):
            problems.append(maintenance)
    both = isinstance(backup, tuple) and isinstance(maintenance, tuple)
    if both and windows_overlap(backup, maintenance):  # type: ignore[arg-type]
        problems.append("the backup and maintenance windows must not overlap")
    seconds = tenant.serverless_seconds_until_auto_pause
    if seconds is not None:
        if tenant.isolation != Isolation.SERVERLESS:
            problems.append("auto-pause: only for an Aurora Serverless v2 cluster")
        elif not AUTO_PAUSE_MIN_S <= seconds <= AUTO_PAUSE_MAX_S:
            problems.append(f"auto-pause: {AUTO_PAUSE_MIN_S} to {AUTO_PAUSE_MAX_S} seconds")
        elif tenant.serverless_min_acu != 0:
            problems.append("auto-pause: only with a minimum of 0 ACU (Aurora pauses at 0)")
    return problems


# --- what RDS should change ------------------------------------------------------------


def engine_change(tenant: Tenant, have: str) -> tuple[dict[str, Any], list[str]]:
    """ModifyDB* arguments for an upgrade to the tenant's version, and notes. Nothing for a
    blank version, the same version or an older one (that one with a note)."""
    want = tenant.db_engine_version
    if not want or not have or version_key(want) == version_key(have):
        return {}, []
    reason = downgrade_reason(want, have)
    if reason:
        return {}, [reason]
    major = version_key(want)[:1] != version_key(have)[:1]
    return {"engine_version": want, "allow_major_version_upgrade": major}, []


def window_changes(tenant: Tenant, resource: dict) -> dict[str, str]:
    """The windows the tenant names that RDS does not have (blank: RDS's own stay)."""
    changes = {}
    if tenant.db_backup_window and resource.get("PreferredBackupWindow") != tenant.db_backup_window:
        changes["backup_window"] = tenant.db_backup_window
    wanted = tenant.db_maintenance_window.lower()
    if wanted and (resource.get("PreferredMaintenanceWindow") or "").lower() != wanted:
        changes["maintenance_window"] = wanted
    return changes


def choice_pairs(tenant: Tenant, resource: dict, version: str) -> list[tuple[str, Any, Any]]:
    """Drift ``(field, want, have)`` of the choices the tenant made (blank ones are RDS's)."""
    pairs: list[tuple[str, Any, Any]] = []
    if tenant.db_engine_version:
        pairs.append(("engine_version", tenant.db_engine_version, version))
    if tenant.db_backup_window:
        pairs.append(
            ("backup_window", tenant.db_backup_window, resource.get("PreferredBackupWindow"))
        )
    if tenant.db_maintenance_window:
        have = (resource.get("PreferredMaintenanceWindow") or "").lower()
        pairs.append(("maintenance_window", tenant.db_maintenance_window.lower(), have))
    return pairs


def wanted_auto_pause(tenant: Tenant) -> int | None:
    """SecondsUntilAutoPause to ask for: only at 0 ACU and only when the tenant set it."""
    if tenant.serverless_min_acu != 0:
        return None
    return tenant.serverless_seconds_until_auto_pause


# --- plan ------------------------------------------------------------------------------


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _maintenance_text(text: str) -> str:
    start, end = text.lower().split("-")
    start_day, start_time = start.split(":", 1)
    end_day, end_time = end.split(":", 1)
    if start_day == end_day:
        return f"{start_day} {start_time}-{end_time} UTC"
    return f"{start_day} {start_time}-{end_day} {end_time} UTC"


def database_plan(tenant: Tenant) -> list[str]:
    """Plan lines for the tenant's database choices (no AWS call)."""
    engine = engine_for(tenant)
    if engine is None:
        return []
    name = "PostgreSQL" if engine == POSTGRES_ENGINE else "Aurora PostgreSQL"
    parts = [f"{name} {wanted_version(tenant)}"]
    if tenant.isolation == Isolation.DEDICATED:
        parts.append("Multi-AZ" if tenant.db_multi_az else "single-AZ")
    parts.append(
        f"backups {tenant.db_backup_window} UTC"
        if tenant.db_backup_window
        else "backups in a window RDS picks"
    )
    parts.append(
        f"maintenance {_maintenance_text(tenant.db_maintenance_window)}"
        if tenant.db_maintenance_window
        else "maintenance in a window RDS picks"
    )
    lines = [", ".join(parts)]
    if tenant.isolation == Isolation.SERVERLESS and tenant.serverless_min_acu == 0:
        seconds = tenant.serverless_seconds_until_auto_pause or AWS_DEFAULT_AUTO_PAUSE_S
        lines.append(f"Aurora pauses after {_duration(seconds)} idle")
    return lines


def apply_corrections(
    tenant: Tenant,
    *,
    kind: str,
    what: str,
    resource: dict,
    modify: Any,
    identifier: str,
    region: str,
    changes: dict[str, Any],
) -> tuple[dict, dict[str, Any], list[str]]:
    """Apply ``changes`` to an RDS instance or cluster at once, then an engine upgrade
    the tenant asked for in its maintenance window (a restart: RDS does it then).

    ``modify`` is rds.modify_db_instance or rds.modify_db_cluster. Returns the resource
    as RDS last answered, every change made, and notes (a refused downgrade)."""
    from tenants.provisioning.database_rds import effective, rds_change, record_rds

    if changes:
        logger.info("Correcting %s %s: %s", what, identifier, sorted(changes))
        resource = rds_change(modify, identifier=identifier, region=region, **changes)
        record_rds(tenant, kind=kind, resource=resource)
    upgrade, notes = engine_change(tenant, effective(resource, "EngineVersion"))
    if upgrade:
        logger.info("Upgrading %s %s to %s", what, identifier, upgrade["engine_version"])
        resource = rds_change(
            modify, identifier=identifier, region=region, apply_immediately=False, **upgrade
        )
        record_rds(tenant, kind=kind, resource=resource)
        changes = {**changes, "engine_version": upgrade["engine_version"]}
    return resource, changes, notes

"""A shared-instance tenant's own database numbers, from ``pg_stat_database``.

CloudWatch only knows the shared instance as a whole. The instance's statistics views know
each database: connections, commits, rollbacks and size. One sample of every database on
the instance is taken at most once a minute (through the master secret) and shared by all
its tenants' pages; rates come from the previous sample. The tenant's row is shown beside
the instance's totals and its busiest neighbours, so a noisy neighbour shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from django.conf import settings

from opsconsole.aws import secrets
from tenants import naming
from tenants.health.cache import Cached, cached_fetch
from tenants.models import Tenant, TenantResource

CONNECT_TIMEOUT_S = 5
NEIGHBOURS = 5

_SAMPLE_SQL = """
SELECT datname,
       numbackends,
       xact_commit,
       xact_rollback,
       CASE WHEN has_database_privilege(datname, 'CONNECT')
            THEN pg_database_size(datname) END
  FROM pg_stat_database
 WHERE datname IS NOT NULL AND datname NOT IN ('template0', 'template1')
"""


def _sample(region: str) -> dict:
    master = secrets.get_secret_json(
        secret_id=settings.BASELINE["shared_db_master_secret"], region=region
    )
    with psycopg.connect(
        host=master["host"],
        port=int(master.get("port") or 5432),
        user=master["username"],
        password=master.get("password"),
        dbname=master.get("dbname") or "postgres",
        connect_timeout=CONNECT_TIMEOUT_S,
        sslmode=settings.TENANT_DB_SSLMODE,
        application_name="opsconsole-health",
        autocommit=True,
    ) as conn:
        conn.execute("SET statement_timeout = 5000")
        rows = conn.execute(_SAMPLE_SQL).fetchall()
    return {
        name: {"connections": c, "commits": xc, "rollbacks": xr, "size": size}
        for name, c, xc, xr, size in rows
    }


@dataclass(frozen=True)
class DatabaseNumbers:
    name: str
    connections: int
    commits: int
    rollbacks: int
    size: int | None
    commits_per_s: float | None
    rollbacks_per_s: float | None


@dataclass(frozen=True)
class SharedDatabaseReport:
    instance: str
    tenant: DatabaseNumbers | None  # None: the database is not on the instance
    total_connections: int
    total_commits_per_s: float | None
    connection_share: float | None
    neighbours: list[DatabaseNumbers]  # busiest other tenant databases
    interval_s: int | None  # between the two samples the rates come from


def _numbers(name: str, now: dict, before: dict | None, interval: float | None):
    row = now[name]
    prev = (before or {}).get(name)
    rate = None
    rollback_rate = None
    if prev and interval:
        rate = max(0.0, (row["commits"] - prev["commits"]) / interval)
        rollback_rate = max(0.0, (row["rollbacks"] - prev["rollbacks"]) / interval)
    return DatabaseNumbers(
        name=name,
        connections=row["connections"],
        commits=row["commits"],
        rollbacks=row["rollbacks"],
        size=row["size"],
        commits_per_s=rate,
        rollbacks_per_s=rollback_rate,
    )


def shared_database(
    tenant: Tenant, resources: list[TenantResource], *, force: bool = False
) -> tuple[SharedDatabaseReport | None, Cached]:
    """The report for a shared-instance tenant (None when no sample could be taken),
    with the cached sample it came from (for its age and error)."""
    record = next((r for r in resources if r.kind == "database"), None)
    dbname = record.name if record else naming.db_name(tenant.slug)
    instance = (record.identifier if record else "") or settings.BASELINE["shared_db_instance"]
    key = f"health:pgstat:{tenant.region}:{instance}"

    def fetch() -> dict:
        # Keep the previous sample in the entry: rates need two.
        from django.core.cache import cache

        previous = (cache.get(key) or {}).get("value")
        sample = {"at": time.time(), "rows": _sample(tenant.region)}
        if previous:
            sample["prev_at"] = previous["at"]
            sample["prev_rows"] = previous["rows"]
        return sample

    cached = cached_fetch(key, fetch, force=force)
    if cached.value is None:
        return None, cached
    value = cached.value
    rows = value["rows"]
    before = value.get("prev_rows")
    interval = (value["at"] - value["prev_at"]) if before else None
    all_numbers = {name: _numbers(name, rows, before, interval) for name in rows}
    mine = all_numbers.get(dbname)
    total_connections = sum(n.connections for n in all_numbers.values())
    rates = [n.commits_per_s for n in all_numbers.values() if n.commits_per_s is not None]
    prefix = naming.db_name("x")[:-1]  # "tenant_"
    neighbours = sorted(
        (n for n in all_numbers.values() if n.name.startswith(prefix) and n.name != dbname),
        key=lambda n: (-(n.commits_per_s or 0), -n.connections, n.name),
    )[:NEIGHBOURS]
    report = SharedDatabaseReport(
        instance=instance,
        tenant=mine,
        total_connections=total_connections,
        total_commits_per_s=sum(rates) if rates else None,
        connection_share=(mine.connections / total_connections)
        if mine and total_connections
        else None,
        neighbours=neighbours,
        interval_s=int(interval) if interval else None,
    )
    return report, cached

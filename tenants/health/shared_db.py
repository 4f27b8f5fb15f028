"""A shared-instance tenant's own database numbers, from ``pg_stat_database``.

CloudWatch only knows the shared instance as a whole. The instance's statistics views know
each database: connections, commits, rollbacks and size. A worker takes one sample of every
database on the instance (through the master secret, which only workers read) once a minute
and on a page's request (``tenants.health.readings``); all its tenants' pages share it, and
rates come from the previous sample. The tenant's row is shown beside the instance's totals
and its busiest neighbours, so a noisy neighbour shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from django.conf import settings

from opsconsole.aws import secrets
from opsconsole.aws.clients import aws_account
from opsconsole.awsaccounts.models import AwsAccount
from tenants import naming
from tenants.health.readings import Reading, reading_get, reading_previous, reading_take
from tenants.models import Isolation, Tenant, TenantResource, TenantStatus

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
        sslrootcert=settings.TENANT_DB_SSLROOTCERT,
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


READ_TASK = "tenants.tasks.health_read_shared_db"


def _key(region: str, instance: str, account: int | None = None) -> str:
    # Cells name their shared instance as the console's own does: the account tells them
    # apart.
    return f"health:pgstat:{account or 'default'}:{region}:{instance}"


def _instance(record: TenantResource | None) -> str:
    return (record.identifier if record else "") or settings.BASELINE["shared_db_instance"]


def shared_db_read(*, region: str, instance: str, account: int | None = None) -> Reading:
    """Worker side: take a sample of the instance and store it with the previous one.
    ``account``: the AwsAccount (pk) of a cell, whose master secret is read there."""
    key = _key(region, instance, account)

    def fetch() -> dict:
        previous, _at = reading_previous(key)
        row = AwsAccount.objects.get(pk=account) if account else None
        with aws_account(row):
            rows = _sample(region)
        sample = {"at": time.time(), "rows": rows}
        if previous:
            sample["prev_at"] = previous["at"]
            sample["prev_rows"] = previous["rows"]
        return sample

    return reading_take(key, fetch)


def shared_db_instances() -> set[tuple[str, str, int | None]]:
    """(region, instance, account) of every shared instance a live tenant has its
    database on (account: the cell's AwsAccount pk, None for the console's own)."""
    records = TenantResource.objects.filter(
        kind="database", tenant__isolation=Isolation.SHARED
    ).exclude(tenant__status=TenantStatus.OFFBOARDED)
    return {
        (r.tenant.region, _instance(r), r.tenant.aws_account_id)
        for r in records.select_related("tenant")
    }


def shared_database(
    tenant: Tenant, resources: list[TenantResource]
) -> tuple[SharedDatabaseReport | None, Reading]:
    """The report for a shared-instance tenant from the last sample a worker took (None
    while there is none), with that reading (for its age and error). Asks a worker for a
    new sample when it is older than HEALTH_CACHE_SECONDS; never samples itself."""
    record = next((r for r in resources if r.kind == "database"), None)
    dbname = record.name if record else naming.db_name(tenant.slug)
    instance = _instance(record)
    cached = reading_get(
        _key(tenant.region, instance, tenant.aws_account_id),
        fresh_s=settings.HEALTH_CACHE_SECONDS,
        task=READ_TASK,
        args=[tenant.region, instance, tenant.aws_account_id],
    )
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

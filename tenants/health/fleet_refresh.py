"""The fleet page's numbers, read from CloudWatch by a worker (beat, every
HEALTH_FLEET_REFRESH_SECONDS), never by a request.

Per (AWS account, region), in that account's credentials:

- the fleet's status: DescribeAlarms for the console's alarms (name prefix) in ALARM state,
  100 a call, usually one call for the whole group however many tenants it has;
- the metric columns of the tenants a page showed recently (``fleet_store.watched``):
  invocations and errors in GetMetricData calls of 500 queries, p95 duration in calls of
  its own (a failing percentile must not lose the rest).

So watching costs 3 metrics per tenant on screen per interval, not 3 per tenant in the
fleet: a 100-row page at 60 s is 18,000 metrics an hour ($0.18), at any fleet size.
A failed read keeps the previous numbers with their age and says why (the page shows it).

Then every tenant's ``FleetHealth`` row gets its alarms, missing records, numbers and the
verdict of those (``assess``), so the page sorts, filters and counts in SQL; only rows
that changed are written (the watched ones, mostly), a few per round however large the
fleet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache

from opsconsole.aws import cloudwatch
from opsconsole.aws.clients import aws_account
from opsconsole.awsaccounts.models import AwsAccount
from tenants import naming
from tenants.health import cache as health_cache
from tenants.health import fleet_store
from tenants.health.cache import describe_error
from tenants.health.fleet_store import CRITICAL_KINDS, AlarmsEntry, HealthRow
from tenants.health.metrics import MetricDef, metric_query
from tenants.health.status import RANK, Signals, assess, error_rate
from tenants.models import ResourceStatus, Tenant, TenantResource, TenantStatus

logger = logging.getLogger(__name__)

FLEET_PERIOD = 3600
# Query id suffixes: (metric name, statistic).
STANDARD = {"inv": ("Invocations", "Sum"), "err": ("Errors", "Sum")}
PERCENTILE = {"p95": ("Duration", "p95")}
METRICS_PER_TENANT = len(STANDARD) + len(PERCENTILE)

_ALARM_DESCRIPTION = "opsconsole tenant "
# A provisioning tenant's records are still being made: its missing ones say nothing yet.
_JUDGED_ON_RECORDS = [TenantStatus.ACTIVE, TenantStatus.SUSPENDED, TenantStatus.FAILED]
_LOCK = "health:fleet:refresh:lock"


@dataclass
class RefreshReport:
    """What one refresh did (the bench and the logs read it)."""

    groups: int = 0
    tenants_watched: int = 0
    metric_calls: int = 0
    metrics_requested: int = 0
    alarms_in_alarm: int = 0
    failures: int = 0
    rows_written: int = 0  # FleetHealth rows that changed


def fleet_groups() -> dict[tuple[int | None, str], list[tuple[int, str, str]]]:
    """Every tenant the fleet page covers (all but offboarded) as (id, slug, status), by
    (account id, region)."""
    groups: dict[tuple[int | None, str], list[tuple[int, str, str]]] = {}
    rows = (
        Tenant.objects.exclude(status=TenantStatus.OFFBOARDED)
        .order_by("aws_account_id", "region", "slug")
        .values_list("aws_account_id", "region", "id", "slug", "status")
    )
    for account_id, region, *tenant in rows:
        groups.setdefault((account_id, region), []).append(tuple(tenant))
    return groups


def missing_by_tenant() -> dict[int, list[list[str]]]:
    """[kind, name] of the records marked missing or deleted, by tenant (one query)."""
    rows = TenantResource.objects.filter(
        status__in=[ResourceStatus.MISSING, ResourceStatus.DELETED],
        tenant__status__in=_JUDGED_ON_RECORDS,
    ).values_list("tenant_id", "kind", "name")
    out: dict[int, list[list[str]]] = {}
    for tenant_id, kind, name in rows:
        out.setdefault(tenant_id, []).append([kind, name])
    return out


def _queries(slugs: list[str], metrics: dict[str, tuple[str, str]]) -> list[dict]:
    queries = []
    for i, slug in enumerate(slugs):
        function = naming.function_name(slug)
        dims = (("FunctionName", function), ("Resource", f"{function}:{naming.ALIAS}"))
        for suffix, (name, stat) in metrics.items():
            metric = MetricDef(f"t{i}_{suffix}", "AWS/Lambda", name, stat, "", "")
            queries.append(metric_query(metric, dims, FLEET_PERIOD, metric.id))
    return queries


def _window() -> tuple[datetime, datetime]:
    end = (int(time.time()) // 60 + 1) * 60
    return datetime.fromtimestamp(end - FLEET_PERIOD, UTC), datetime.fromtimestamp(end, UTC)


def _fetch(region: str, slugs: list[str], metrics: dict) -> tuple[dict[str, dict], int, int]:
    """({suffix: {slug: sum over the hour}}, calls, metrics requested)."""
    start, end = _window()
    queries = _queries(slugs, metrics)
    results, calls = cloudwatch.get_metric_data_batched(
        queries=queries,
        start=start,
        end=end,
        region=region,
        workers=settings.HEALTH_FLEET_WORKERS,
    )
    out: dict[str, dict[str, float]] = {suffix: {} for suffix in metrics}
    for i, slug in enumerate(slugs):
        for suffix in metrics:
            values = results.get(f"t{i}_{suffix}", {}).get("values")
            if values:
                out[suffix][slug] = sum(values)
    return out, calls, len(queries)


def refresh_alarms(group: str, region: str) -> tuple[AlarmsEntry, int]:
    """The group's alarms in ALARM, by tenant, and how many. A failure keeps the last
    answer and its time, with the reason, and raises."""
    entry = fleet_store.read_groups([group])[group][0]
    now = health_cache.clock()
    try:
        found = cloudwatch.describe_alarms_in_state(prefix=f"{naming.PREFIX}-", region=region)
    except Exception as exc:  # noqa: BLE001 - the page says why; the next round tries again
        logger.warning("fleet alarms of %s failed", group, exc_info=True)
        fleet_store.write_alarms(group, AlarmsEntry(entry.alarms, entry.at, describe_error(exc)))
        raise
    alarms: dict[str, list[str]] = {}
    for alarm in found:
        description = alarm.get("AlarmDescription") or ""
        if description.startswith(_ALARM_DESCRIPTION):
            slug = description[len(_ALARM_DESCRIPTION) :]
            alarms.setdefault(slug, []).append(alarm["AlarmName"])
    entry = AlarmsEntry(alarms, now)
    fleet_store.write_alarms(group, entry)
    return entry, len(found)


def refresh_metrics(
    group: str, region: str, rows: dict[str, HealthRow], watched: list[str], report: RefreshReport
) -> None:
    """Invocations, errors and p95 of the ``watched`` slugs, into their ``rows`` (by
    slug, the group's, holding what was kept): numbers of tenants no longer watched stay,
    with their age, until HEALTH_STALE_SECONDS."""
    entry = fleet_store.read_groups([group])[group][1]
    now = health_cache.clock()
    horizon = now - settings.HEALTH_STALE_SECONDS
    for row in rows.values():
        if row.metrics_at is not None and row.metrics_at < horizon:
            row.invocations = row.errors = row.metrics_at = None
        if row.p95_at is not None and row.p95_at < horizon:
            row.p95_ms = row.p95_at = None
    failed = False
    if watched:
        try:
            found, calls, requested = _fetch(region, watched, STANDARD)
        except Exception as exc:  # noqa: BLE001
            logger.warning("fleet metrics of %s failed", group, exc_info=True)
            entry.error, failed = describe_error(exc), True
        else:
            report.metric_calls += calls
            report.metrics_requested += requested
            entry.error = ""
            for slug in watched:
                row = rows[slug]
                row.metrics_at = now
                row.invocations = found["inv"].get(slug)
                row.errors = found["err"].get(slug)
        retry = settings.HEALTH_PERCENTILE_RETRY_SECONDS
        if entry.p95_failed_at is None or now - entry.p95_failed_at >= retry:
            try:
                found, calls, requested = _fetch(region, watched, PERCENTILE)
            except Exception as exc:  # noqa: BLE001
                logger.warning("fleet p95 of %s failed", group, exc_info=True)
                entry.p95_error, entry.p95_failed_at, failed = describe_error(exc), now, True
            else:
                report.metric_calls += calls
                report.metrics_requested += requested
                entry.p95_error, entry.p95_failed_at = "", None
                for slug in watched:
                    rows[slug].p95_at = now
                    rows[slug].p95_ms = found["p95"].get(slug)
    ages = [row.metrics_at for row in rows.values() if row.metrics_at is not None]
    entry.oldest_at = min(ages) if ages else None
    fleet_store.write_metrics(group, entry)
    report.failures += failed


def _unavailable(alarms: AlarmsEntry) -> str:
    """Why nobody may call the group's tenants healthy: no alarm state was ever read."""
    if alarms.at is not None:
        return ""
    if alarms.error:
        return f"alarm states unavailable: {alarms.error}"
    return "alarm states not fetched yet"


def _judge(row: HealthRow) -> None:
    """``row.signals_rank`` and ``error_rate`` from what it holds, as ``assess`` finds it
    for an active tenant (the page adds the tenant's lifecycle status, read live)."""
    row.error_rate = error_rate(row.errors, row.invocations)
    level, _ = assess(
        Signals(
            tenant_status=TenantStatus.ACTIVE,
            missing=[f"{kind} {name}" for kind, name in row.missing],
            missing_critical=[f"{k} {n}" for k, n in row.missing if k in CRITICAL_KINDS],
            alarms_firing=row.alarms,
            invocations=row.invocations,
            errors=row.errors,
            metrics_error=row.unavailable,
        )
    )
    row.signals_rank = RANK[level]


def refresh_group(
    group: str,
    region: str,
    tenants: list[tuple[int, str, str]],
    missing: dict[int, list[list[str]]],
    report: RefreshReport,
) -> None:
    """One group's round: its alarm states, the watched tenants' numbers, then every
    tenant's row (only those that changed are written)."""
    try:
        alarms, firing = refresh_alarms(group, region)
        report.alarms_in_alarm += firing
    except Exception:  # noqa: BLE001 - recorded in the entry; the numbers still come
        report.failures += 1
        alarms = fleet_store.read_groups([group])[group][0]
    before = fleet_store.read_rows([tenant_id for tenant_id, _, _ in tenants])
    rows: dict[str, HealthRow] = {}
    for tenant_id, slug, _ in tenants:
        kept = before.get(tenant_id)
        rows[slug] = HealthRow(0, [], [], **({} if kept is None else _numbers(kept)))
    watched = fleet_store.watched([slug for _, slug, _ in tenants])
    report.tenants_watched += len(watched)
    refresh_metrics(group, region, rows, watched, report)
    unavailable = _unavailable(alarms)
    by_id = {}
    for tenant_id, slug, _ in tenants:
        row = rows[slug]
        row.alarms = alarms.alarms.get(slug, [])
        row.missing = missing.get(tenant_id, [])
        row.unavailable = unavailable
        _judge(row)
        by_id[tenant_id] = row
    report.rows_written += fleet_store.write_rows(by_id, before)


def _numbers(row: HealthRow) -> dict:
    return {
        "invocations": row.invocations,
        "errors": row.errors,
        "metrics_at": row.metrics_at,
        "p95_ms": row.p95_ms,
        "p95_at": row.p95_at,
    }


def fleet_refresh(*, groups: Iterable[tuple[int | None, str]] | None = None) -> RefreshReport:
    """One round over every group: alarms for all, metrics for the watched, every
    tenant's row. One round at a time (a lock in the cache); a round that finds the lock
    taken does nothing."""
    report = RefreshReport()
    try:
        claimed = cache.add(_LOCK, 1, timeout=max(60, 2 * settings.HEALTH_FLEET_REFRESH_SECONDS))
    except Exception:  # noqa: BLE001 - without the cache there is nowhere to put the answers
        logger.warning("fleet refresh: cache unavailable", exc_info=True)
        return report
    if not claimed:
        return report
    try:
        by_group = fleet_groups()
        wanted = set(groups) if groups is not None else None
        accounts = AwsAccount.objects.in_bulk({a for a, _ in by_group if a})
        missing = missing_by_tenant()
        for (account_id, region), tenants in by_group.items():
            if wanted is not None and (account_id, region) not in wanted:
                continue
            report.groups += 1
            with aws_account(accounts.get(account_id) if account_id else None):
                refresh_group(
                    fleet_store.group_key(account_id, region), region, tenants, missing, report
                )
    finally:
        cache.delete(_LOCK)
    return report

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
from tenants.health.fleet_store import AlarmsEntry
from tenants.health.metrics import MetricDef, metric_query
from tenants.models import Tenant, TenantStatus

logger = logging.getLogger(__name__)

FLEET_PERIOD = 3600
# Query id suffixes: (metric name, statistic).
STANDARD = {"inv": ("Invocations", "Sum"), "err": ("Errors", "Sum")}
PERCENTILE = {"p95": ("Duration", "p95")}
METRICS_PER_TENANT = len(STANDARD) + len(PERCENTILE)

_ALARM_DESCRIPTION = "opsconsole tenant "
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


def fleet_groups() -> dict[tuple[int | None, str], list[str]]:
    """Every tenant the fleet page covers (all but offboarded), by (account id, region)."""
    groups: dict[tuple[int | None, str], list[str]] = {}
    rows = (
        Tenant.objects.exclude(status=TenantStatus.OFFBOARDED)
        .order_by("aws_account_id", "region", "slug")
        .values_list("aws_account_id", "region", "slug")
    )
    for account_id, region, slug in rows:
        groups.setdefault((account_id, region), []).append(slug)
    return groups


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


def refresh_alarms(group: str, region: str) -> int:
    """The group's alarms in ALARM, by tenant. Returns how many; a failure keeps the last
    answer and its time, with the reason."""
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
    fleet_store.write_alarms(group, AlarmsEntry(alarms, now))
    return len(found)


def _forget_older(horizon: float, at: dict[str, float], *numbers: dict[str, float]) -> None:
    for slug in [s for s, t in at.items() if t < horizon]:
        del at[slug]
        for values in numbers:
            values.pop(slug, None)


def refresh_metrics(group: str, region: str, slugs: list[str], report: RefreshReport) -> None:
    """Invocations, errors and p95 of ``slugs`` (the watched tenants of the group), merged
    into what is kept: numbers of tenants no longer watched stay, with their age, until
    HEALTH_STALE_SECONDS."""
    entry = fleet_store.read_groups([group])[group][1]
    now = health_cache.clock()
    horizon = now - settings.HEALTH_STALE_SECONDS
    _forget_older(horizon, entry.at, entry.inv, entry.err)
    _forget_older(horizon, entry.p95_at, entry.p95)
    failed = False
    if slugs:
        try:
            found, calls, requested = _fetch(region, slugs, STANDARD)
        except Exception as exc:  # noqa: BLE001
            logger.warning("fleet metrics of %s failed", group, exc_info=True)
            entry.error, failed = describe_error(exc), True
        else:
            report.metric_calls += calls
            report.metrics_requested += requested
            entry.error = ""
            for slug in slugs:
                entry.at[slug] = now
                for suffix, numbers in (("inv", entry.inv), ("err", entry.err)):
                    if slug in found[suffix]:
                        numbers[slug] = found[suffix][slug]
                    else:
                        numbers.pop(slug, None)
        retry = settings.HEALTH_PERCENTILE_RETRY_SECONDS
        if entry.p95_failed_at is None or now - entry.p95_failed_at >= retry:
            try:
                found, calls, requested = _fetch(region, slugs, PERCENTILE)
            except Exception as exc:  # noqa: BLE001
                logger.warning("fleet p95 of %s failed", group, exc_info=True)
                entry.p95_error, entry.p95_failed_at, failed = describe_error(exc), now, True
            else:
                report.metric_calls += calls
                report.metrics_requested += requested
                entry.p95_error, entry.p95_failed_at = "", None
                for slug in slugs:
                    entry.p95_at[slug] = now
                    if slug in found["p95"]:
                        entry.p95[slug] = found["p95"][slug]
                    else:
                        entry.p95.pop(slug, None)
    fleet_store.write_metrics(group, entry)
    report.failures += failed


def fleet_refresh(*, groups: Iterable[tuple[int | None, str]] | None = None) -> RefreshReport:
    """One round over every group: alarms for all, metrics for the watched. One round at a
    time (a lock in the cache); a round that finds the lock taken does nothing."""
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
        for (account_id, region), slugs in by_group.items():
            if wanted is not None and (account_id, region) not in wanted:
                continue
            group = fleet_store.group_key(account_id, region)
            report.groups += 1
            watched = fleet_store.watched(slugs)
            report.tenants_watched += len(watched)
            with aws_account(accounts.get(account_id) if account_id else None):
                try:
                    report.alarms_in_alarm += refresh_alarms(group, region)
                except Exception:  # noqa: BLE001 - recorded in the entry; the others go on
                    report.failures += 1
                refresh_metrics(group, region, watched, report)
    finally:
        cache.delete(_LOCK)
    return report

"""SANDBOX ONLY: simulated CloudWatch metrics and log lines for every active tenant.

moto never produces AWS/Lambda, AWS/ApiGateway or AWS/RDS metrics, nor function logs, so
the health pages would be empty in the sandbox. A beat task (``tenants.tasks``) calls
``simulate_metrics`` once a minute; it writes, for each active tenant and each minute not
yet written, what CloudWatch would hold, with the dimensions the health pages query
(``tenants.health.metrics.tenant_targets``):

- a daily traffic pattern (busiest around 15:00 UTC) with noise, sized per tenant;
- one tenant (the same one every time) with an error spike in minutes 40-49 of each hour,
  and its errors alarm set to ALARM meanwhile (moto never evaluates alarms);
- a dip in traffic and a burst of slow cold starts in the three minutes after each
  deployment;
- matching log lines in a ``simulated/YYYY/MM/DD`` stream of the function's log group.

Every value is drawn from a generator seeded by tenant and minute, so a minute written
twice would be written the same; a claim in the cache keeps it to once anyway. The pages
say "simulated" wherever these numbers show. Production never runs this: the task and this
module both refuse outside the sandbox.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from opsconsole.aws import cloudwatch, logs
from opsconsole.aws.errors import AwsError, AwsNotFound
from tenants import naming
from tenants.health.history import deploy_times
from tenants.health.metrics import Target, tenant_targets
from tenants.models import Isolation, Tenant, TenantStatus

logger = logging.getLogger(__name__)

_LAST_KEY = "sandbox:metrics:last-minute"
_LOCK_KEY = "sandbox:metrics:lock"
_ALARM_KEY = "sandbox:metrics:alarm:{}"
SPIKE_MINUTES = range(40, 50)
SPIKE_ERROR_RATE = 0.3
DIP = {0: (0.35, 3.0), 1: (0.6, 1.8), 2: (0.85, 1.2)}  # minutes after a deploy: traffic, duration
_ERRORS = (
    "OperationalError: connection to the database timed out",
    "KeyError: 'customer_id'",
    "TimeoutError: upstream payment API did not answer in 3 s",
    "ValueError: invalid invoice state 'void'",
)


@dataclass(frozen=True)
class Profile:
    """A tenant's size and habits, fixed by its slug."""

    requests_per_minute: float
    duration_ms: float
    error_rate: float

    @classmethod
    def of(cls, slug: str) -> Profile:
        h = int(hashlib.sha256(slug.encode()).hexdigest(), 16)
        return cls(
            requests_per_minute=20 + h % 180,
            duration_ms=60 + (h >> 8) % 90,
            error_rate=0.001 + ((h >> 16) % 5) / 1000,
        )


def spike_tenant(slugs: list[str]) -> str | None:
    """The tenant with the error spike: stable while the set of tenants is."""
    if not slugs:
        return None
    return min(slugs, key=lambda s: hashlib.sha256(s.encode()).hexdigest())


def daily_load(ts: int) -> float:
    """0.1 at night to 1.0 at 15:00 UTC."""
    hour = (ts % 86400) / 3600
    return 0.55 + 0.45 * math.sin(2 * math.pi * (hour - 9) / 24)


@dataclass(frozen=True)
class Minute:
    invocations: int
    errors: int
    throttles: int
    duration_ms: float
    concurrency: int
    requests: int
    client_errors: int
    load: float
    cold_start: bool


def tenant_minute(
    slug: str, ts: int, *, spike: bool, deploys: list[int], reserved: int | None = None
) -> Minute:
    profile = Profile.of(slug)
    rng = random.Random(f"{slug}:{ts}")
    load = daily_load(ts) * rng.gauss(1, 0.08)
    traffic, slow = 1.0, 1.0
    for deployed in deploys:
        after = (ts - deployed) // 60
        if after in DIP:
            traffic, slow = DIP[after]
    invocations = max(0, round(profile.requests_per_minute * load * traffic))
    rate = SPIKE_ERROR_RATE if spike and (ts // 60) % 60 in SPIKE_MINUTES else profile.error_rate
    errors = min(invocations, round(invocations * rate * rng.uniform(0.6, 1.4)))
    duration = profile.duration_ms * (1 + 0.3 * load) * slow * rng.gauss(1, 0.05)
    concurrency = max(1, math.ceil(invocations / 60 * duration / 1000 * 4))
    client_errors = round(invocations * 0.02 * rng.uniform(0.5, 1.5))
    return Minute(
        invocations=invocations,
        errors=errors,
        # Lambda throttles what goes past a reserved concurrency.
        throttles=max(0, concurrency - reserved) * 10 if reserved else 0,
        duration_ms=max(1.0, duration),
        concurrency=concurrency,
        requests=invocations + client_errors,
        client_errors=client_errors,
        load=load * traffic,
        cold_start=slow > 1,
    )


def _dims(target: Target) -> list[dict[str, str]]:
    return [{"Name": n, "Value": v} for n, v in target.dimensions]


def _datum(name: str, target: Target, when: datetime, unit: str, value: float) -> dict:
    return {
        "MetricName": name,
        "Dimensions": _dims(target),
        "Timestamp": when,
        "Value": float(value),
        "Unit": unit,
    }


def _stats(name: str, target: Target, when: datetime, unit: str, avg: float, n: int) -> dict:
    n = max(n, 1)
    return {
        "MetricName": name,
        "Dimensions": _dims(target),
        "Timestamp": when,
        "StatisticValues": {
            "SampleCount": float(n),
            "Sum": avg * n,
            "Minimum": avg * 0.4,
            "Maximum": avg * 3.5,
        },
        "Unit": unit,
    }


def _function_data(target: Target, when: datetime, m: Minute) -> list[dict]:
    return [
        _datum("Invocations", target, when, "Count", m.invocations),
        _datum("Errors", target, when, "Count", m.errors),
        _datum("Throttles", target, when, "Count", m.throttles),
        _stats("Duration", target, when, "Milliseconds", m.duration_ms, m.invocations),
        _datum("ConcurrentExecutions", target, when, "Count", m.concurrency),
    ]


def _api_data(target: Target, when: datetime, m: Minute) -> list[dict]:
    return [
        _datum("Count", target, when, "Count", m.requests),
        _datum("4xx", target, when, "Count", m.client_errors),
        _datum("5xx", target, when, "Count", m.errors),
        _stats("Latency", target, when, "Milliseconds", m.duration_ms + 12, m.requests),
        _stats("IntegrationLatency", target, when, "Milliseconds", m.duration_ms + 4, m.requests),
    ]


def _database_data(tenant: Tenant, target: Target, when: datetime, m: Minute) -> list[dict]:
    rng = random.Random(f"{tenant.slug}:db:{when.timestamp()}")
    data = [
        _datum(
            "CPUUtilization", target, when, "Percent", min(95, 4 + 35 * m.load + rng.gauss(0, 2))
        ),
        _datum("DatabaseConnections", target, when, "Count", 2 + m.concurrency),
    ]
    if tenant.isolation == Isolation.SERVERLESS:
        low, high = float(tenant.serverless_min_acu), float(tenant.serverless_max_acu)
        data.append(
            _datum(
                "ServerlessDatabaseCapacity",
                target,
                when,
                "Count",
                low + (high - low) * 0.6 * m.load,
            )
        )
    else:
        free = tenant.db_allocated_storage_gb * 1e9 * (0.85 + rng.uniform(-0.002, 0.002))
        data.append(_datum("FreeStorageSpace", target, when, "Bytes", free))
    return data


def _log_events(slug: str, ts: int, m: Minute) -> list[dict]:
    rng = random.Random(f"{slug}:log:{ts}")
    at = ts * 1000
    events = []
    if m.cold_start:
        events.append(
            {"timestamp": at + 100, "message": "INIT_START cold start after a deploy (simulated)"}
        )
    for i in range(min(m.errors, 3)):
        request = f"{rng.getrandbits(64):016x}"
        events.append(
            {
                "timestamp": at + 1000 + i * 7000,
                "message": f"[ERROR] {rng.choice(_ERRORS)} request_id={request} (simulated)",
            }
        )
    events.append(
        {
            "timestamp": at + 59000,
            "message": f"REPORT invocations={m.invocations} errors={m.errors} "
            f"avg_duration={m.duration_ms:.1f} ms (simulated)",
        }
    )
    return events


def _minutes_to_write(now_minute: int, backfill: int) -> list[int]:
    last = cache.get(_LAST_KEY)
    earliest = now_minute - backfill * 60
    first = earliest if last is None else max(earliest, int(last) + 60)
    return list(range(first, now_minute + 1, 60))


def _write_log_lines(group: str, stream: str, events: list[dict], region: str) -> int:
    """Append to the day's stream, creating it when needed. Which streams exist is
    remembered in the cache; a moto server that restarted has forgotten them, so a missing
    stream is created once more."""
    key = f"sandbox:metrics:stream:{region}:{group}:{stream}"
    for attempt in range(2):
        try:
            if not cache.get(key):
                logs.create_log_stream(group=group, stream=stream, region=region)
                cache.set(key, 1, timeout=2 * 86400)
            logs.put_log_events(group=group, stream=stream, events=events, region=region)
            return len(events)
        except AwsNotFound:
            cache.delete(key)
            if attempt:
                raise
    return 0


def _set_errors_alarm(tenant: Tenant, spiking: bool) -> None:
    name = naming.alarm_name(tenant.slug, "errors")
    state = "ALARM" if spiking else "OK"
    key = _ALARM_KEY.format(name)
    if cache.get(key) == state:
        return
    reason = (
        "Simulated: errors above the threshold (sandbox)"
        if spiking
        else "Simulated: errors back under the threshold (sandbox)"
    )
    try:
        cloudwatch.set_alarm_state(name=name, state=state, reason=reason, region=tenant.region)
    except AwsNotFound:
        return
    # Short-lived: a restarted moto server has the alarm back in INSUFFICIENT_DATA.
    cache.set(key, state, timeout=600)


def simulate_metrics(*, now: datetime | None = None, backfill_minutes: int | None = None) -> dict:
    """Write the minutes since the last run (at most ``backfill_minutes`` back) for every
    active tenant. Returns what it wrote."""
    if not settings.SANDBOX:
        raise ImproperlyConfigured(
            "Simulated metrics only run in the sandbox (OPSCONSOLE_SANDBOX=1)."
        )
    if not cache.add(_LOCK_KEY, 1, timeout=300):
        return {"skipped": "another run is writing"}
    try:
        return _simulate(now or datetime.now(UTC), backfill_minutes)
    finally:
        cache.delete(_LOCK_KEY)


def _simulate(now: datetime, backfill_minutes: int | None) -> dict:
    backfill = (
        settings.SANDBOX_METRICS_BACKFILL_MINUTES if backfill_minutes is None else backfill_minutes
    )
    now_minute = int(now.timestamp()) // 60 * 60
    minutes = _minutes_to_write(now_minute, backfill)
    tenants = list(
        Tenant.objects.filter(status=TenantStatus.ACTIVE)
        .prefetch_related("resources")
        .order_by("slug")
    )
    if not minutes or not tenants:
        cache.set(_LAST_KEY, now_minute, timeout=None)
        return {"tenants": len(tenants), "minutes": 0, "datums": 0, "log_events": 0}
    spiking = spike_tenant([t.slug for t in tenants])
    since = datetime.fromtimestamp(minutes[0] - 180, UTC)
    deploys = {
        slug: [int(d.timestamp()) for d in times]
        for slug, times in deploy_times([t.slug for t in tenants], since=since).items()
    }
    data: dict[tuple[str, str], list[dict]] = defaultdict(list)
    # The shared instance carries every shared tenant: one datum per minute for it.
    shared: dict[tuple[str, Target, int], list[Minute]] = defaultdict(list)
    log_batches: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for tenant in tenants:
        targets = {t.group: t for t in tenant_targets(tenant, list(tenant.resources.all()))}
        for ts in minutes:
            m = tenant_minute(
                tenant.slug,
                ts,
                spike=tenant.slug == spiking,
                deploys=deploys.get(tenant.slug, []),
                reserved=tenant.reserved_concurrency,
            )
            when = datetime.fromtimestamp(ts, UTC)
            if "function" in targets:
                data[(tenant.region, "AWS/Lambda")] += _function_data(targets["function"], when, m)
            if "api" in targets:
                data[(tenant.region, "AWS/ApiGateway")] += _api_data(targets["api"], when, m)
            if "database" in targets:
                if tenant.isolation == Isolation.SHARED:
                    shared[(tenant.region, targets["database"], ts)].append(m)
                else:
                    data[(tenant.region, "AWS/RDS")] += _database_data(
                        tenant, targets["database"], when, m
                    )
            if ts >= now_minute - 3600:  # log lines for the last hour only
                log_batches[(tenant.region, tenant.slug)] += _log_events(tenant.slug, ts, m)
    for (region, target, ts), parts in shared.items():
        when = datetime.fromtimestamp(ts, UTC)
        cpu = min(95.0, 5 + sum(8 * m.load for m in parts))
        data[(region, "AWS/RDS")] += [
            _datum("CPUUtilization", target, when, "Percent", cpu),
            _datum(
                "DatabaseConnections",
                target,
                when,
                "Count",
                3 + sum(1 + m.concurrency for m in parts),
            ),
        ]

    datums = 0
    for (region, namespace), items in data.items():
        cloudwatch.put_metric_data(namespace=namespace, data=items, region=region)
        datums += len(items)
    log_events = 0
    stream = f"simulated/{now.strftime('%Y/%m/%d')}"
    by_slug = {t.slug: t for t in tenants}
    for (region, slug), events in log_batches.items():
        try:
            log_events += _write_log_lines(naming.log_group_name(slug), stream, events, region)
        except AwsError as exc:  # no log group (yet), for one: the others still get theirs
            logger.warning("simulated log lines for %s not written: %s", slug, exc)
    for tenant in tenants:
        if any(r.kind == "alarm" for r in tenant.resources.all()):
            # The provisioned alarm fires above 5 errors over 5 minutes; the minutes are
            # seeded, so they can be drawn again here whichever run wrote them.
            last_five = sum(
                tenant_minute(
                    tenant.slug,
                    ts,
                    spike=tenant.slug == spiking,
                    deploys=deploys.get(tenant.slug, []),
                ).errors
                for ts in range(now_minute - 240, now_minute + 1, 60)
            )
            _set_errors_alarm(tenant, last_five > 5)
    cache.set(_LAST_KEY, now_minute, timeout=None)
    logger.info(
        "simulated %d minutes for %d tenants: %d datums, %d log lines",
        len(minutes),
        len(by_slug),
        datums,
        log_events,
    )
    return {
        "tenants": len(tenants),
        "minutes": len(minutes),
        "datums": datums,
        "log_events": log_events,
        "spike_tenant": spiking,
    }

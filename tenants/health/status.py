"""One status per tenant: healthy, degraded or down, with the reason.

``assess`` is a plain function of what is known about a tenant; the health page, the
fleet list and ``tenant_status`` (which a rollout's verify step calls) all use it, so a
tenant has the same status everywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tenants.health.alarms import AlarmState, tenant_alarms
from tenants.health.cache import Cached
from tenants.health.metrics import (
    MissingResource,
    SeriesSet,
    last_hour_numbers,
    missing_resources,
    tenant_metrics,
    tenant_targets,
)
from tenants.models import Tenant, TenantStatus

HEALTHY = "healthy"
DEGRADED = "degraded"
DOWN = "down"
STATUSES = (HEALTHY, DEGRADED, DOWN)
RANK = {HEALTHY: 0, DEGRADED: 1, DOWN: 2}

# Below this many requests in the hour a rate says little (3 errors in 4 calls).
MIN_REQUESTS_FOR_RATE = 20
DEGRADED_ERROR_RATE = 0.05
DOWN_ERROR_RATE = 0.5


# A provisioning tenant is judged by its numbers alone: onboarding verifies the first
# release with this same status.
_LIFECYCLE = {
    TenantStatus.FAILED: (DOWN, "provisioning failed"),
    TenantStatus.SUSPENDED: (DOWN, "suspended: its function takes no traffic"),
    TenantStatus.OFFBOARDING: (DOWN, "being offboarded"),
    TenantStatus.OFFBOARDED: (DOWN, "offboarded"),
}


@dataclass
class Signals:
    """What is known about a tenant over the last hour. None: no datapoint."""

    tenant_status: str
    tenant_status_reason: str = ""
    missing: list[str] = field(default_factory=list)
    missing_critical: list[str] = field(default_factory=list)
    alarms_firing: list[str] = field(default_factory=list)
    invocations: float | None = None
    errors: float | None = None
    throttles: float | None = None
    api_requests: float | None = None
    api_5xx: float | None = None
    # Why no metrics are known (a failed read with nothing cached): not a verdict on the
    # tenant, but nobody may call it healthy either.
    metrics_error: str = ""
    # Said after the reason without changing the status (e.g. how old cached numbers are).
    data_note: str = ""


def error_rate(errors: float | None, invocations: float | None) -> float | None:
    if not invocations:
        return None
    return (errors or 0) / invocations


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def rate_finding(errors: float | None, requests: float | None, what: str) -> tuple[str, str] | None:
    """A failure rate's verdict over the last hour, or None when it is fine or when too
    few requests were made to say."""
    rate = error_rate(errors, requests)
    if rate is None or (requests or 0) < MIN_REQUESTS_FOR_RATE or rate < DEGRADED_ERROR_RATE:
        return None
    status = DOWN if rate >= DOWN_ERROR_RATE else DEGRADED
    return status, f"{_pct(rate)} {what} in the last hour"


def assess(s: Signals) -> tuple[str, str]:
    """(status, reason). The reason names the worst findings first."""
    findings: list[tuple[str, str]] = []

    def add(status: str, reason: str) -> None:
        findings.append((status, reason))

    lifecycle = _LIFECYCLE.get(s.tenant_status)
    if lifecycle:
        status, reason = lifecycle
        if s.tenant_status_reason:
            reason = f"{reason}: {s.tenant_status_reason}"
        add(status, reason)
    if s.missing_critical:
        add(DOWN, "missing " + ", ".join(s.missing_critical))
    others = [m for m in s.missing if m not in s.missing_critical]
    if others:
        add(DEGRADED, "missing " + ", ".join(others))

    rate = error_rate(s.errors, s.invocations)
    for finding in (
        rate_finding(s.errors, s.invocations, "of invocations failed"),
        rate_finding(s.api_5xx, s.api_requests, "of API requests answered 5xx"),
    ):
        if finding:
            findings.append(finding)
    if s.throttles:
        add(DEGRADED, f"{int(s.throttles)} throttled invocations in the last hour")
    if s.alarms_firing:
        add(DEGRADED, "in ALARM: " + ", ".join(s.alarms_firing))
    if s.metrics_error:
        add(DEGRADED, f"metrics unavailable ({s.metrics_error})")

    if not findings:
        if s.invocations:
            reason = (
                f"{int(s.invocations):,} invocations, {_pct(rate or 0.0)} errors in the last hour"
            )
        else:
            reason = "no alarm, no errors; no traffic in the last hour"
        return HEALTHY, _with_note(reason, s.data_note)
    worst = max(RANK[status] for status, _ in findings)
    status = next(st for st, _ in findings if RANK[st] == worst)
    reasons = [r for st, r in findings if RANK[st] == worst]
    reasons += [r for st, r in findings if RANK[st] < worst]
    return status, _with_note("; ".join(reasons), s.data_note)


def _with_note(reason: str, note: str) -> str:
    return f"{reason} ({note})" if note else reason


def tenant_status(tenant: Tenant, *, force: bool = True) -> tuple[str, str]:
    """(healthy | degraded | down, reason) of one tenant, now.

    Reads its resource records, its alarms and its last hour of standard metrics (one
    DescribeAlarms and one GetMetricData call; no percentile call). ``force`` (the default:
    a rollout's verify step wants the newest numbers) skips the cache but still refreshes
    it. Where AWS fails, the last cached numbers are used and the reason says how old they
    are; with none cached the tenant is degraded ("metrics unavailable"), never healthy.
    """
    resources = list(tenant.resources.all())
    metrics = tenant_metrics(
        tenant,
        tenant_targets(tenant, resources),
        range_key="1h",
        force=force,
        with_percentiles=False,
    )
    signals = signals_for(
        tenant,
        missing=missing_resources(tenant, resources),
        metrics=metrics.standard,
        alarms=tenant_alarms(tenant, resources, force=force),
    )
    return assess(signals)


def signals_for(
    tenant: Tenant,
    *,
    missing: list[MissingResource],
    metrics: Cached[SeriesSet],
    alarms: Cached[list[AlarmState]],
) -> Signals:
    """Signals from the cached reads that the page and ``tenant_status`` share."""
    numbers = last_hour_numbers(metrics.value, now=int(time.time()))
    missing_names = [str(m) for m in missing]
    if tenant.status not in (TenantStatus.PROVISIONING, TenantStatus.OFFBOARDED):
        missing_names += [f"alarm {a.name}" for a in alarms.value or [] if a.state == "MISSING"]
    notes = []
    if metrics.stale:
        notes.append(f"metrics {metrics.age_s} s old: {metrics.error}")
    if alarms.stale:
        notes.append(f"alarm states {alarms.age_s} s old: {alarms.error}")
    elif alarms.value is None and alarms.error:
        notes.append(f"alarm states unknown: {alarms.error}")
    return Signals(
        tenant_status=tenant.status,
        tenant_status_reason=tenant.status_reason,
        missing=missing_names,
        missing_critical=[str(m) for m in missing if m.critical],
        alarms_firing=[a.name for a in alarms.value or [] if a.state == "ALARM"],
        invocations=numbers["fn_invocations"],
        errors=numbers["fn_errors"],
        throttles=numbers["fn_throttles"],
        api_requests=numbers["api_requests"],
        api_5xx=numbers["api_5xx"],
        metrics_error=metrics.error if metrics.value is None else "",
        data_note="; ".join(notes),
    )

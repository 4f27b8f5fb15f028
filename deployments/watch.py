"""What a deployment's watch sees of its tenant once the alias moved (the verify step).

The signals and rules of the tenant's health status (``tenants.health``): the states of
the alarms provisioning made, and the failure rates of
``tenants.health.status.rate_finding`` (at least ``MIN_REQUESTS_FOR_RATE`` requests,
``DEGRADED_ERROR_RATE`` failing), counted over the minutes since the alias moved instead
of the last hour, so the old version's errors never count against the new one. Nothing
here decides how long to watch (``Rollout.watch_s``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opsconsole.aws import cloudwatch
from opsconsole.aws.errors import AwsError
from tenants.health.metrics import tenant_metrics, tenant_targets
from tenants.health.status import rate_finding
from tenants.models import Tenant
from tenants.provisioning.alarms import alarm_names

# (errors, requests, what) of the rates a watch judges.
RATES = (
    ("fn_errors", "fn_invocations", "of invocations failed"),
    ("api_5xx", "api_requests", "of API requests answered 5xx"),
)


@dataclass
class Look:
    firing: list[str] = field(default_factory=list)  # alarms in ALARM
    findings: list[str] = field(default_factory=list)  # failure rates over the rule
    alarms_unknown: str = ""  # why no alarm state is known (nothing cached either)


def alarms_firing(tenant: Tenant) -> list[str]:
    """The tenant's alarms in ALARM now: one DescribeAlarms call (missing ones are skipped)."""
    states = cloudwatch.describe_alarms(names=alarm_names(tenant), region=tenant.region)
    return sorted(n for n, a in states.items() if a.get("StateValue") == "ALARM")


def look(tenant: Tenant, *, since: float, rates: bool, fresh: bool) -> Look:
    """One look: the alarms read now (DescribeAlarms is cheap); the metrics, when
    ``rates``, from the health pages' minute cache unless ``fresh`` (the last look)."""
    try:
        seen = Look(firing=alarms_firing(tenant))
    except AwsError as exc:
        return Look(alarms_unknown=str(exc))
    if not rates or seen.firing:
        return seen
    resources = list(tenant.resources.all())
    series = tenant_metrics(
        tenant,
        tenant_targets(tenant, resources),
        range_key="1h",
        force=fresh,
        with_percentiles=False,
    ).standard.value
    if series is None:
        return seen
    for errors_id, requests_id, what in RATES:
        # Datapoints are per minute, stamped with the minute's start: counting from
        # ``since`` takes the whole minutes after the move.
        errors = series.total_since(errors_id, int(since))
        requests = series.total_since(requests_id, int(since))
        if rate_finding(errors, requests, what):
            rate = (errors or 0) / (requests or 1)
            seen.findings.append(
                f"{rate * 100:.1f}% {what} since the alias moved ({errors:.0f} of {requests:.0f})"
            )
    return seen

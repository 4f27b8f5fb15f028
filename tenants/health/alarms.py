"""The tenant's CloudWatch alarms and their states, one DescribeAlarms call per minute."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from opsconsole.aws import cloudwatch
from tenants import naming
from tenants.health.cache import Cached, cached_fetch
from tenants.models import ResourceStatus, Tenant, TenantResource
from tenants.resources import console_url

# The alarms provisioning makes (tenants.provisioning.alarms); used when none is recorded.
_DEFAULT_ALARMS = ("errors", "throttles", "db-cpu", "db-connections", "api-5xx")


@dataclass(frozen=True)
class AlarmState:
    name: str
    state: str  # OK | ALARM | INSUFFICIENT_DATA | MISSING (recorded, not in CloudWatch)
    reason: str
    updated: datetime | None
    metric: str
    url: str


def alarm_names(tenant: Tenant, resources: list[TenantResource]) -> list[str]:
    recorded = sorted(
        r.name for r in resources if r.kind == "alarm" and r.status == ResourceStatus.PRESENT
    )
    return recorded or [naming.alarm_name(tenant.slug, what) for what in _DEFAULT_ALARMS]


def _url(name: str, region: str) -> str:
    return console_url(TenantResource(kind="alarm", name=name, region=region))


def tenant_alarms(
    tenant: Tenant, resources: list[TenantResource], *, force: bool = False
) -> Cached[list[AlarmState]]:
    names = alarm_names(tenant, resources)

    def fetch() -> list[AlarmState]:
        found = cloudwatch.describe_alarms(names=names, region=tenant.region)
        states = []
        for name in names:
            alarm = found.get(name)
            if alarm is None:
                states.append(AlarmState(name, "MISSING", "not in CloudWatch", None, "", ""))
                continue
            updated = alarm.get("StateUpdatedTimestamp")
            states.append(
                AlarmState(
                    name=name,
                    state=alarm.get("StateValue", ""),
                    reason=alarm.get("StateReason", ""),
                    updated=updated.astimezone(UTC) if updated else None,
                    metric=f"{alarm.get('Namespace', '')} {alarm.get('MetricName', '')}",
                    url=_url(name, tenant.region),
                )
            )
        return states

    digest = hashlib.sha1(",".join(names).encode(), usedforsecurity=False).hexdigest()[:12]
    key = f"health:alarms:{tenant.region}:{tenant.slug}:{digest}"
    return cached_fetch(key, fetch, force=force)

"""Drift: what differs between a tenant's desired/recorded state and AWS."""

from __future__ import annotations

from dataclasses import asdict

from tenants.attachments import attachment_drift
from tenants.models import Tenant
from tenants.provisioning import database
from tenants.provisioning.alarm_topic import topic_drift
from tenants.provisioning.alarms import alarm_drift
from tenants.provisioning.api import api_drift
from tenants.provisioning.common import Drift, tenant_of
from tenants.provisioning.function import function_drift
from tenants.provisioning.identity import role_drift
from tenants.provisioning.log_group import log_group_drift
from tenants.provisioning.network import network_drift

CHECKS = [
    network_drift,
    attachment_drift,
    database.database_drift,
    role_drift,
    log_group_drift,
    function_drift,
    api_drift,
    alarm_drift,
    topic_drift,
]


def tenant_drift(tenant: Tenant) -> list[Drift]:
    found: list[Drift] = []
    for check in CHECKS:
        found.extend(check(tenant))
    return found


def step_compare(job, step) -> dict:
    tenant = tenant_of(job)
    found = tenant_drift(tenant)
    return {
        "in_sync": not found,
        "drift": [{k: str(v) for k, v in asdict(d).items()} for d in found],
    }

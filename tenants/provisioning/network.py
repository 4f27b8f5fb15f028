"""Step 1: the subnets and security groups the tenant's function and database use.

They belong to the account baseline (shared by all tenants); the step checks they are
there and records which ones this tenant uses.
"""

from __future__ import annotations

from tenants import resources
from tenants.provisioning.common import Drift, baseline_network, tenant_of


def step_network(job, step) -> dict:
    tenant = tenant_of(job)
    network = baseline_network(tenant.region)
    details = {
        "subnet_ids": network.subnet_ids,
        "function_sg_id": network.function_sg_id,
        "database_sg_id": network.database_sg_id,
    }
    resources.record(
        tenant, kind="network", name=network.vpc_id, identifier=network.vpc_id, details=details
    )
    return {"vpc_id": network.vpc_id, **details}


def network_drift(tenant) -> list[Drift]:
    record = resources.find(tenant, kind="network")
    try:
        network = baseline_network(tenant.region)
    except RuntimeError as exc:
        return [Drift("network", "baseline", "exists", "present", str(exc))]
    if record and record.identifier != network.vpc_id:
        return [Drift("network", record.name, "vpc_id", record.identifier, network.vpc_id)]
    return []

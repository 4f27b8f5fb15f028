"""Step 1: the subnets and security groups the tenant's function and database use.

They belong to the account baseline (shared by all tenants); the step checks they are
there and records which ones this tenant uses. A function outside the VPC
(``function_in_vpc`` off) uses none of them: the step records that instead.
"""

from __future__ import annotations

from tenants import resources
from tenants.models import Isolation, Tenant, TenantResource
from tenants.provisioning.common import Drift, baseline_network, tenant_of

# The network record's name for a function outside the VPC (inside: the VPC's id).
OUTSIDE_VPC = "outside-vpc"


def network_problems(tenant: Tenant) -> list[str]:
    """Why the tenant's network choice cannot work (empty: it can). Reads no AWS.

    Outside the VPC the function has no route to anything in it: not to an RDS database
    of the console's, nor to an attachment (a service the VPC guards by security group).
    """
    if tenant.function_in_vpc:
        return []
    from tenants.attachments import attachments_for

    problems = []
    if tenant.isolation != Isolation.NONE:
        problems.append(
            "A function outside the VPC cannot reach the tenant's database: run it inside "
            "the VPC, or choose isolation none (the app brings its own database)."
        )
    attached = attachments_for(tenant)
    if attached:
        names = ", ".join(sorted(a.name for a in attached))
        problems.append(
            f"A function outside the VPC cannot reach its attachments ({names}): run it "
            "inside the VPC."
        )
    return problems


def _forget_other_records(tenant: Tenant, keep: str) -> None:
    # One network record a tenant: the one its function uses now (moving in or out of
    # the VPC replaces it).
    TenantResource.objects.filter(tenant=tenant, kind="network").exclude(name=keep).delete()


def step_network(job, step) -> dict:
    tenant = tenant_of(job)
    problems = network_problems(tenant)
    if problems:
        raise RuntimeError(" ".join(problems))
    if not tenant.function_in_vpc:
        _forget_other_records(tenant, OUTSIDE_VPC)
        resources.record(
            tenant, kind="network", name=OUTSIDE_VPC, details={"function_in_vpc": False}
        )
        return {"function_in_vpc": False, "network": "outside the VPC (no subnets, no NAT)"}
    network = baseline_network(tenant.region)
    details = {
        "subnet_ids": network.subnet_ids,
        "function_sg_id": network.function_sg_id,
        "database_sg_id": network.database_sg_id,
    }
    _forget_other_records(tenant, network.vpc_id)
    resources.record(
        tenant, kind="network", name=network.vpc_id, identifier=network.vpc_id, details=details
    )
    return {"vpc_id": network.vpc_id, **details}


def network_drift(tenant) -> list[Drift]:
    record = resources.find(tenant, kind="network")
    if not tenant.function_in_vpc:
        # Nothing of the VPC's to compare; the function's drift checks its VpcConfig.
        if record is not None and record.name != OUTSIDE_VPC:
            return [Drift("network", record.name, "function_in_vpc", False, True)]
        return []
    try:
        network = baseline_network(tenant.region)
    except RuntimeError as exc:
        return [Drift("network", "baseline", "exists", "present", str(exc))]
    if record and record.identifier != network.vpc_id:
        return [Drift("network", record.name, "vpc_id", record.identifier, network.vpc_id)]
    return []

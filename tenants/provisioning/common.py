"""What every provisioning step shares: loading the tenant, the baseline, drift records."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from opsconsole.aws import clients, ec2, sts
from opsconsole.jobs.models import Job
from tenants import naming
from tenants.models import Tenant


def tenant_of(job: Job) -> Tenant:
    return Tenant.objects.get(slug=job.subject_id)


def tags_for(tenant: Tenant) -> dict[str, str]:
    return {**{k: str(v) for k, v in tenant.tags.items()}, **naming.tags(tenant.slug)}


@functools.cache
def _account_id(endpoint: str, region: str) -> str:
    return sts.get_caller_identity(region=region)["account"]


def account_id(region: str) -> str:
    """The AWS account the current calls go to: a tenant's registered account (known,
    no call), else the console's own (asked once)."""
    role = clients.current_account()
    if role is not None:
        return role.account_id
    return _account_id(settings.AWS_ENDPOINT_URL, region)


@dataclass(frozen=True)
class Network:
    vpc_id: str
    subnet_ids: list[str]
    function_sg_id: str
    database_sg_id: str


def baseline_network(region: str) -> Network:
    """The account's VPC, private subnets and security groups for tenants (by name)."""
    names = settings.BASELINE
    vpc = ec2.find_vpc(name=names["vpc_name"], region=region)
    if vpc is None:
        raise RuntimeError(
            f"No VPC tagged Name={names['vpc_name']} in {region}: see the AWS account page."
        )
    subnets = ec2.list_private_subnets(vpc_id=vpc["VpcId"], region=region)
    if len({s["AvailabilityZone"] for s in subnets}) < 2:
        raise RuntimeError(f"VPC {vpc['VpcId']} needs private subnets in two zones.")
    keys = ("function_sg_name", "database_sg_name")
    found = ec2.find_security_groups(
        vpc_id=vpc["VpcId"], names=[names[k] for k in keys], region=region
    )
    groups = {}
    for key in keys:
        if names[key] not in found:
            raise RuntimeError(f"No security group {names[key]} in {vpc['VpcId']}.")
        groups[key] = found[names[key]]["GroupId"]
    return Network(
        vpc_id=vpc["VpcId"],
        subnet_ids=[s["SubnetId"] for s in subnets],
        function_sg_id=groups["function_sg_name"],
        database_sg_id=groups["database_sg_name"],
    )


def tenant_network(tenant: Tenant) -> Network:
    """The network the tenant's network step recorded (no AWS call), else the baseline's.

    Later steps of the same pipeline use this: the network step has just looked it up.
    """
    from tenants import resources

    record = resources.find(tenant, kind="network")
    if record is None or not record.details.get("subnet_ids"):
        return baseline_network(tenant.region)
    return Network(
        vpc_id=record.identifier,
        subnet_ids=list(record.details["subnet_ids"]),
        function_sg_id=record.details["function_sg_id"],
        database_sg_id=record.details["database_sg_id"],
    )


@dataclass(frozen=True)
class Drift:
    """One difference between what the tenant should have and what AWS has."""

    kind: str
    name: str
    field: str
    expected: Any
    actual: Any

    @property
    def missing(self) -> bool:
        return self.field == "exists"

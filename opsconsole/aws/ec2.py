"""EC2 networking: the VPC, subnets and security groups tenants are placed in."""

from __future__ import annotations

from opsconsole.aws.clients import call, client, tag_dict


def find_vpc(*, name: str, region: str | None = None) -> dict | None:
    resp = call(
        client("ec2", region).describe_vpcs,
        Filters=[{"Name": "tag:Name", "Values": [name]}],
    )
    vpcs = resp.get("Vpcs", [])
    return vpcs[0] if vpcs else None


def list_private_subnets(*, vpc_id: str, region: str | None = None) -> list[dict]:
    resp = call(
        client("ec2", region).describe_subnets,
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "tag:Tier", "Values": ["private"]},
        ],
    )
    return sorted(resp.get("Subnets", []), key=lambda s: s["AvailabilityZone"])


def find_security_group(*, vpc_id: str, name: str, region: str | None = None) -> dict | None:
    resp = call(
        client("ec2", region).describe_security_groups,
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": [name]},
        ],
    )
    groups = resp.get("SecurityGroups", [])
    return groups[0] if groups else None


def name_of(resource: dict) -> str:
    return tag_dict(resource.get("Tags")).get("Name", "")

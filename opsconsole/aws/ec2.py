"""EC2 networking: the VPC, subnets and security groups tenants are placed in."""

from __future__ import annotations

from opsconsole.aws.clients import call, client, tag_dict, tag_list


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


def find_security_groups(
    *, vpc_id: str, names: list[str], region: str | None = None
) -> dict[str, dict]:
    """Several security groups of a VPC by name, in one call: {name: group}."""
    resp = call(
        client("ec2", region).describe_security_groups,
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": names},
        ],
    )
    return {g["GroupName"]: g for g in resp.get("SecurityGroups", [])}


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


def _tag_specifications(resource_type: str, tags: dict[str, str]) -> list[dict]:
    return [{"ResourceType": resource_type, "Tags": tag_list(tags)}]


def list_availability_zones(*, region: str | None = None) -> list[str]:
    """Names of the region's available zones (not Local or Wavelength zones), sorted."""
    resp = call(
        client("ec2", region).describe_availability_zones,
        Filters=[
            {"Name": "state", "Values": ["available"]},
            {"Name": "zone-type", "Values": ["availability-zone"]},
        ],
    )
    return sorted(z["ZoneName"] for z in resp.get("AvailabilityZones", []))


def create_vpc(*, name: str, cidr: str, tags: dict[str, str], region: str | None = None) -> dict:
    """Create a VPC tagged ``Name=name`` (plus ``tags``), with DNS hostnames on.

    RDS endpoints and interface endpoints resolve through the VPC's DNS, which a new VPC
    has; hostnames are off by default and some services expect them.
    """
    ec2 = client("ec2", region)
    vpc = call(
        ec2.create_vpc,
        CidrBlock=cidr,
        TagSpecifications=_tag_specifications("vpc", {**tags, "Name": name}),
    )["Vpc"]
    call(ec2.modify_vpc_attribute, VpcId=vpc["VpcId"], EnableDnsHostnames={"Value": True})
    return vpc


def find_subnet(*, vpc_id: str, name: str, region: str | None = None) -> dict | None:
    resp = call(
        client("ec2", region).describe_subnets,
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "tag:Name", "Values": [name]},
        ],
    )
    subnets = resp.get("Subnets", [])
    return subnets[0] if subnets else None


def create_subnet(
    *,
    vpc_id: str,
    name: str,
    cidr: str,
    availability_zone: str,
    tags: dict[str, str],
    region: str | None = None,
) -> dict:
    return call(
        client("ec2", region).create_subnet,
        VpcId=vpc_id,
        CidrBlock=cidr,
        AvailabilityZone=availability_zone,
        TagSpecifications=_tag_specifications("subnet", {**tags, "Name": name}),
    )["Subnet"]


def create_security_group(
    *,
    vpc_id: str,
    name: str,
    description: str,
    tags: dict[str, str],
    region: str | None = None,
) -> dict:
    """Create a security group and return it as ``describe_security_groups`` shows it.

    A new group allows all egress and no ingress.
    """
    ec2 = client("ec2", region)
    group_id = call(
        ec2.create_security_group,
        VpcId=vpc_id,
        GroupName=name,
        Description=description,
        TagSpecifications=_tag_specifications("security-group", {**tags, "Name": name}),
    )["GroupId"]
    return call(ec2.describe_security_groups, GroupIds=[group_id])["SecurityGroups"][0]


def allows_ingress_from_group(
    group: dict, *, source_group_id: str, port: int, protocol: str = "tcp"
) -> bool:
    """Whether ``group`` (as described) admits ``source_group_id`` on ``protocol``/``port``."""
    for perm in group.get("IpPermissions", []):
        if perm.get("IpProtocol") == "-1":
            covers = True
        else:
            covers = perm.get("IpProtocol") == protocol and (
                perm.get("FromPort", -1) <= port <= perm.get("ToPort", -1)
            )
        sources = {p.get("GroupId") for p in perm.get("UserIdGroupPairs", [])}
        if covers and source_group_id in sources:
            return True
    return False


def allows_all_egress(group: dict) -> bool:
    return any(
        perm.get("IpProtocol") == "-1"
        and any(r.get("CidrIp") == "0.0.0.0/0" for r in perm.get("IpRanges", []))
        for perm in group.get("IpPermissionsEgress", [])
    )


def authorize_ingress_from_group(
    *,
    group_id: str,
    source_group_id: str,
    port: int,
    description: str,
    protocol: str = "tcp",
    region: str | None = None,
) -> None:
    call(
        client("ec2", region).authorize_security_group_ingress,
        GroupId=group_id,
        IpPermissions=[
            {
                "IpProtocol": protocol,
                "FromPort": port,
                "ToPort": port,
                "UserIdGroupPairs": [{"GroupId": source_group_id, "Description": description}],
            }
        ],
    )


def authorize_all_egress(*, group_id: str, region: str | None = None) -> None:
    call(
        client("ec2", region).authorize_security_group_egress,
        GroupId=group_id,
        IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )

"""EC2 networking: the VPC, subnets and security groups tenants are placed in."""

from __future__ import annotations

import contextlib

from opsconsole.aws.clients import call, client, tag_dict, tag_list
from opsconsole.aws.errors import AwsError, AwsNotFound


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


# --- a tenant's own function group and the rules between it and attached services ------


def describe_security_groups(*, group_ids: list[str], region: str | None = None) -> list[dict]:
    """The groups by id; AwsNotFound (InvalidGroup.NotFound) when any of them is missing."""
    if not group_ids:
        return []
    resp = call(client("ec2", region).describe_security_groups, GroupIds=sorted(set(group_ids)))
    return resp.get("SecurityGroups", [])


def describe_security_group(*, group_id: str, region: str | None = None) -> dict | None:
    try:
        groups = describe_security_groups(group_ids=[group_id], region=region)
    except AwsNotFound:
        return None
    return groups[0] if groups else None


def group_ports(permissions: list[dict], *, protocol: str = "tcp") -> dict[tuple[str, int], str]:
    """Single ports (FromPort == ToPort) that ``permissions`` open to or from other groups:
    ``{(group_id, port): description}``."""
    found = {}
    for perm in permissions:
        if perm.get("IpProtocol") != protocol or perm.get("FromPort") != perm.get("ToPort"):
            continue
        for pair in perm.get("UserIdGroupPairs", []):
            found[(pair["GroupId"], int(perm["FromPort"]))] = pair.get("Description", "")
    return found


def _peer(peer: dict, key: str) -> dict:
    """One peer of a rule as a revoke call names it: its id and, when it has one, its
    description (the local AWS, moto, matches rules on it too; AWS ignores it)."""
    out = {key: peer[key]}
    if peer.get("Description"):
        out["Description"] = peer["Description"]
    return out


def _reduced(perm: dict, **parts: list[dict]) -> dict:
    """A described permission as a revoke call takes it."""
    base: dict = {"IpProtocol": perm["IpProtocol"]}
    if "FromPort" in perm:
        base.update(FromPort=perm["FromPort"], ToPort=perm["ToPort"])
    return {**base, **{k: v for k, v in parts.items() if v}}


def other_permissions(
    permissions: list[dict], *, keep: set[tuple[str, int]], protocol: str = "tcp"
) -> list[dict]:
    """Everything ``permissions`` allow besides the single ports to groups in ``keep``
    (CIDRs such as a new group's allow-all egress, prefix lists, other groups, ranges),
    each as a revoke call takes it."""
    out = []
    for perm in permissions:
        single = perm.get("IpProtocol") == protocol and perm.get("FromPort") == perm.get("ToPort")
        pairs = [
            _peer(p, "GroupId")
            for p in perm.get("UserIdGroupPairs", [])
            if not (single and (p["GroupId"], int(perm["FromPort"])) in keep)
        ]
        parts = {
            "IpRanges": [_peer(r, "CidrIp") for r in perm.get("IpRanges", [])],
            "Ipv6Ranges": [_peer(r, "CidrIpv6") for r in perm.get("Ipv6Ranges", [])],
            "PrefixListIds": [_peer(p, "PrefixListId") for p in perm.get("PrefixListIds", [])],
            "UserIdGroupPairs": pairs,
        }
        if any(parts.values()):
            out.append(_reduced(perm, **parts))
    return out


def permissions_referencing(permissions: list[dict], *, group_id: str) -> list[dict]:
    """The parts of ``permissions`` that name ``group_id`` (any protocol or port range), as a
    revoke call takes them; another group's or a CIDR's rules are left out."""
    out = []
    for perm in permissions:
        pairs = [_peer(p, "GroupId") for p in perm.get("UserIdGroupPairs", [])]
        pairs = [p for p in pairs if p["GroupId"] == group_id]
        if pairs:
            out.append(_reduced(perm, UserIdGroupPairs=pairs))
    return out


def describe_permission(perm: dict) -> str:
    """``tcp/6379 from sg-1``, ``all 0.0.0.0/0``: one permission in a line (drift)."""
    protocol = "all" if perm.get("IpProtocol") == "-1" else perm.get("IpProtocol", "")
    ports = ""
    if perm.get("FromPort") not in (None, -1):
        low, high = perm["FromPort"], perm["ToPort"]
        ports = f"/{low}" if low == high else f"/{low}-{high}"
    peers = [p["GroupId"] for p in perm.get("UserIdGroupPairs", [])]
    peers += [r["CidrIp"] for r in perm.get("IpRanges", [])]
    peers += [r["CidrIpv6"] for r in perm.get("Ipv6Ranges", [])]
    peers += [p["PrefixListId"] for p in perm.get("PrefixListIds", [])]
    return f"{protocol}{ports} {', '.join(peers)}".strip()


def _group_rule(group_id: str, port: int, description: str, protocol: str) -> list[dict]:
    pair = {"GroupId": group_id, "Description": description}
    return [{"IpProtocol": protocol, "FromPort": port, "ToPort": port, "UserIdGroupPairs": [pair]}]


def revoke_ingress(*, group_id: str, permissions: list[dict], region: str | None = None) -> None:
    """Revoke ingress permissions (as ``permissions_referencing`` gives them); rules already
    gone are no error."""
    if not permissions:
        return
    with contextlib.suppress(AwsNotFound):
        call(
            client("ec2", region).revoke_security_group_ingress,
            GroupId=group_id,
            IpPermissions=permissions,
        )


def authorize_egress_to_group(
    *,
    group_id: str,
    target_group_id: str,
    port: int,
    description: str,
    protocol: str = "tcp",
    region: str | None = None,
) -> None:
    try:
        call(
            client("ec2", region).authorize_security_group_egress,
            GroupId=group_id,
            IpPermissions=_group_rule(target_group_id, port, description, protocol),
        )
    except AwsError as exc:
        if exc.code != "InvalidPermission.Duplicate":
            raise


def revoke_egress(*, group_id: str, permissions: list[dict], region: str | None = None) -> None:
    """Revoke egress permissions as ``other_permissions`` gives them (a new group's
    allow-all, a rule added by hand); rules already gone are no error."""
    if not permissions:
        return
    with contextlib.suppress(AwsNotFound):
        call(
            client("ec2", region).revoke_security_group_egress,
            GroupId=group_id,
            IpPermissions=permissions,
        )


def delete_security_group(*, group_id: str, region: str | None = None) -> bool:
    """Delete a group; False when it was gone. AWS answers DependencyViolation (an
    AwsError) while a network interface (a Lambda function's) or another group's rule
    still uses it."""
    try:
        call(client("ec2", region).delete_security_group, GroupId=group_id)
    except AwsNotFound:
        return False
    return True

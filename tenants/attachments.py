"""Existing services in the VPC that tenants' functions reach (a shared Redis, any host).

An attachment names a host, a port and the security group that guards it. A tenant with
attachments gets a security group of its own for its function (``opsconsole-<slug>-fn``):
the service's group admits that group on the port, so each tenant reaches exactly what it
was given, and removing a tenant's rule never touches another tenant's.

Egress: a new group allows all egress. The tenant's group loses that and gets one rule per
attachment (to the service's group on its port), so the group says exactly what it is for
and drift can check it exactly. The function keeps the baseline function group as well:
that one carries what every function needs (PostgreSQL to the database group, HTTPS to AWS
APIs and Secrets Manager; all egress in the sandbox seed). Security groups add up, so the
baseline decides the function's general egress; what this module guards is the way in to
each service.

The tenant group's record (kind ``function_sg``) lists the rules it last applied, so a
rule whose attachment was deleted is still found (and revoked) by the next reconcile.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict

from django.conf import settings
from django.db.models import Q

from opsconsole.aws import ec2
from opsconsole.aws.errors import AwsError
from opsconsole.jobs.registry import StepWait
from tenants import naming, resources
from tenants.app_settings import reserved_reason
from tenants.models import Attachment, ResourceStatus, Tenant, TenantStatus
from tenants.provisioning.common import (
    Drift,
    Network,
    baseline_network,
    tags_for,
    tenant_network,
    tenant_of,
)

KIND = "function_sg"
PLACEHOLDERS = ("host", "port", "tenant")
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}\Z")  # \Z: "$" lets a final newline in
SG_ID_RE = re.compile(r"^sg-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
HOST_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?\Z")
# ENIs of a deleted Lambda function are released by AWS in minutes (up to ~20).
ENI_RETRY_S = 60

Rules = dict[tuple[str, int], list[str]]


def attachments_for(tenant: Tenant) -> list[Attachment]:
    """The tenant's own attachments and the fleet's (tenant empty)."""
    if tenant.pk is None:
        return list(Attachment.objects.filter(tenant=None))
    return list(Attachment.objects.filter(Q(tenant=tenant) | Q(tenant=None)).order_by("name"))


def tenant_security_group(tenant: Tenant) -> str | None:
    """The tenant's own function security group, once its step recorded it. None while it
    is being retired (no attachments left): the function step then drops it."""
    record = resources.find(tenant, kind=KIND)
    if record is None or record.status != ResourceStatus.PRESENT or not record.identifier:
        return None
    if record.details.get("retiring"):
        return None
    return record.identifier


def group_name(slug: str) -> str:
    return f"{naming.resource_prefix(slug)}-fn"


def rule_description(slug: str, names: list[str]) -> str:
    """Names the tenant and the attachments, for people reading the service's group."""
    return f"opsconsole tenant {slug}: {', '.join(sorted(names))}"[:255]


def desired_rules(tenant: Tenant) -> Rules:
    """``{(service group, port): [attachment names]}``: two attachments to one service
    and port share one rule."""
    rules: Rules = defaultdict(list)
    for attachment in attachments_for(tenant):
        rules[(attachment.security_group_id, attachment.port)].append(attachment.name)
    return dict(rules)


def _recorded_rules(record) -> set[tuple[str, int]]:
    if record is None:
        return set()
    return {(r["security_group_id"], int(r["port"])) for r in record.details.get("rules", [])}


# --- the step --------------------------------------------------------------------------


def step_attachments(job, step) -> dict:
    """Provisioning: the tenant's group and the rules between it and attached services."""
    tenant = tenant_of(job)
    wanted = desired_rules(tenant)
    record = resources.find(tenant, kind=KIND)
    if not wanted:
        if record is None or record.status == ResourceStatus.DELETED:
            return {"security_group": None, "rules": []}
        return _retire(tenant, record)
    if not tenant.function_in_vpc:
        raise RuntimeError(
            f"{tenant.slug} has attachments but its function runs outside the VPC: put it "
            "in the VPC or remove them."
        )
    network = tenant_network(tenant)
    group = _ensure_group(tenant, network, record)
    group_id = group["GroupId"]
    changes = _converge_egress(tenant, group, wanted)
    services = _service_groups(tenant, network, wanted, record)
    for service_id, service in services.items():
        changes += _converge_ingress(tenant, service_id, service, group_id, wanted)
    _record(tenant, group_id, network.vpc_id, wanted)
    return {
        "security_group": group_id,
        "rules": [f"{sg} tcp/{port}" for sg, port in sorted(wanted)],
        "changed": changes,
    }


def _ensure_group(tenant: Tenant, network: Network, record) -> dict:
    """The tenant's group: as recorded, else adopted by name (a crash after the create),
    else created."""
    region = tenant.region
    group = None
    if record is not None and record.identifier and record.status == ResourceStatus.PRESENT:
        group = ec2.describe_security_group(group_id=record.identifier, region=region)
    name = group_name(tenant.slug)
    if group is None:
        group = ec2.find_security_group(vpc_id=network.vpc_id, name=name, region=region)
    if group is None:
        group = ec2.create_security_group(
            vpc_id=network.vpc_id,
            name=name,
            description=f"opsconsole tenant {tenant.slug}: its function, to attached services",
            tags=tags_for(tenant),
            region=region,
        )
    # Recorded before any rule, so offboarding finds a group a failed step left behind.
    rules = record.details.get("rules", []) if record is not None else []
    resources.record(
        tenant,
        kind=KIND,
        name=name,
        identifier=group["GroupId"],
        details={"vpc_id": network.vpc_id, "rules": rules},
    )
    return group


def _converge_egress(tenant: Tenant, group: dict, wanted: Rules) -> list[str]:
    """Egress exactly to the services' groups on their ports (the default allow-all goes)."""
    group_id, region = group["GroupId"], tenant.region
    egress = group.get("IpPermissionsEgress", [])
    have = ec2.group_ports(egress)
    changes = []
    extra = ec2.other_permissions(egress, keep=set(wanted))
    if extra:
        ec2.revoke_egress(group_id=group_id, permissions=extra, region=region)
        changes += [f"revoked egress {ec2.describe_permission(p)}" for p in extra]
    for (service_id, port), names in sorted(wanted.items()):
        if (service_id, port) not in have:
            ec2.authorize_egress_to_group(
                group_id=group_id,
                target_group_id=service_id,
                port=port,
                description=rule_description(tenant.slug, names),
                region=region,
            )
            changes.append(f"egress tcp/{port} to {service_id}")
    return changes


def _service_groups(tenant: Tenant, network: Network, wanted: Rules, record) -> dict[str, dict]:
    """The attached services' groups (each must be in the tenant's VPC) and the groups of
    rules recorded earlier (gone ones are skipped: nothing left to revoke there)."""
    out = {}
    for service_id in sorted({sg for sg, _ in wanted} | {sg for sg, _ in _recorded_rules(record)}):
        service = ec2.describe_security_group(group_id=service_id, region=tenant.region)
        needed = any(sg == service_id for sg, _ in wanted)
        if service is None:
            if needed:
                raise RuntimeError(
                    f"Security group {service_id} of an attachment does not exist in "
                    f"{tenant.region}: fix or remove the attachment."
                )
            continue
        if needed and service.get("VpcId") != network.vpc_id:
            raise RuntimeError(
                f"Security group {service_id} is in {service.get('VpcId')}, not in the tenant's "
                f"VPC {network.vpc_id}: a group can only admit groups of its own VPC."
            )
        out[service_id] = service
    return out


def _ours(service: dict, group_id: str) -> tuple[set[int], list[dict]]:
    """Single ports the service's group opens to the tenant group, and anything else that
    names the tenant group (a port range added by hand)."""
    perms = service.get("IpPermissions", [])
    ports = {port for (gid, port) in ec2.group_ports(perms) if gid == group_id}
    others = [
        p
        for p in perms
        if not (p.get("IpProtocol") == "tcp" and p.get("FromPort") == p.get("ToPort"))
    ]
    return ports, ec2.permissions_referencing(others, group_id=group_id)


def _converge_ingress(
    tenant: Tenant, service_id: str, service: dict, group_id: str, wanted: Rules
) -> list[str]:
    region = tenant.region
    have, odd = _ours(service, group_id)
    want = {port: names for (sg, port), names in wanted.items() if sg == service_id}
    changes = []
    for port in sorted(set(want) - have):
        try:
            ec2.authorize_ingress_from_group(
                group_id=service_id,
                source_group_id=group_id,
                port=port,
                description=rule_description(tenant.slug, want[port]),
                region=region,
            )
        except AwsError as exc:
            if exc.code != "InvalidPermission.Duplicate":
                raise
        changes.append(f"{service_id} admits {group_id} on tcp/{port}")
    stale = [
        perm
        for perm in ec2.permissions_referencing(service.get("IpPermissions", []), group_id=group_id)
        if perm.get("IpProtocol") == "tcp"
        and perm.get("FromPort") == perm.get("ToPort")
        and perm["FromPort"] not in want
    ]
    stale += odd
    if stale:
        ec2.revoke_ingress(group_id=service_id, permissions=stale, region=region)
        changes += [f"{service_id} revoked {ec2.describe_permission(p)}" for p in stale]
    return changes


def _record(tenant: Tenant, group_id: str, vpc_id: str, wanted: Rules, **extra) -> None:
    rules = [
        {"security_group_id": sg, "port": port, "attachments": sorted(names)}
        for (sg, port), names in sorted(wanted.items())
    ]
    resources.record(
        tenant,
        kind=KIND,
        name=group_name(tenant.slug),
        identifier=group_id,
        details={"vpc_id": vpc_id, "rules": rules, **extra},
    )


def _revoke_all_ingress(tenant: Tenant, group_id: str, record) -> list[str]:
    """Every rule in a service's group (recorded or still declared) naming the tenant's."""
    revoked = []
    service_ids = {sg for sg, _ in _recorded_rules(record)}
    service_ids |= {a.security_group_id for a in attachments_for(tenant)}
    for service_id in sorted(service_ids):
        service = ec2.describe_security_group(group_id=service_id, region=tenant.region)
        if service is None:
            continue
        perms = ec2.permissions_referencing(service.get("IpPermissions", []), group_id=group_id)
        if perms:
            ec2.revoke_ingress(group_id=service_id, permissions=perms, region=tenant.region)
            revoked += [f"{service_id} {ec2.describe_permission(p)}" for p in perms]
    return revoked


def _retire(tenant: Tenant, record) -> dict:
    """No attachments left: the services' rules go, then the group. While the function
    still uses the group AWS refuses the delete; the group is then marked retiring (the
    function step drops it from the function) and the next reconcile or the offboarding
    deletes it."""
    group_id = record.identifier
    revoked = _revoke_all_ingress(tenant, group_id, record)
    vpc_id = record.details.get("vpc_id", "")
    try:
        deleted = ec2.delete_security_group(group_id=group_id, region=tenant.region)
    except AwsError as exc:
        if exc.code != "DependencyViolation":
            raise
        _record(tenant, group_id, vpc_id, {}, retiring=True)
        return {"security_group": group_id, "revoked": revoked, "retiring": True}
    resources.mark(tenant, kind=KIND, name=record.name, status=ResourceStatus.DELETED)
    return {"security_group": group_id, "revoked": revoked, "deleted": deleted}


def step_delete_attachments(job, step) -> dict:
    """Offboarding, after the function: the services' rules, then the tenant's group. The
    deleted function's network interfaces keep the group in use for a while: wait."""
    tenant = tenant_of(job)
    record = resources.find(tenant, kind=KIND)
    if record is None or record.status == ResourceStatus.DELETED or not record.identifier:
        return {"security_group": None}
    group_id = record.identifier
    revoked = _revoke_all_ingress(tenant, group_id, record)
    try:
        deleted = ec2.delete_security_group(group_id=group_id, region=tenant.region)
    except AwsError as exc:
        if exc.code != "DependencyViolation":
            raise
        raise StepWait(
            f"waiting for the function's network interfaces to release {group_id}",
            retry_in=ENI_RETRY_S,
        ) from exc
    resources.mark(tenant, kind=KIND, name=record.name, status=ResourceStatus.DELETED)
    return {"security_group": group_id, "revoked": revoked, "deleted": deleted}


# --- drift -----------------------------------------------------------------------------


def attachment_drift(tenant: Tenant) -> list[Drift]:
    """The tenant's group and the services' rules against its attachments: missing or
    extra rules (either side), a missing group, a group left after the last attachment."""
    if tenant.status in (TenantStatus.OFFBOARDED, TenantStatus.OFFBOARDING):
        return []
    wanted = desired_rules(tenant)
    record = resources.find(tenant, kind=KIND)
    name = group_name(tenant.slug)
    group = None
    if record is not None and record.identifier and record.status == ResourceStatus.PRESENT:
        group = ec2.describe_security_group(group_id=record.identifier, region=tenant.region)
    if not wanted:
        if group is not None:
            return [Drift(KIND, name, "exists", "absent (no attachments)", "present")]
        return []
    if group is None:
        return [Drift(KIND, name, "exists", "present", "missing")]
    group_id = group["GroupId"]
    egress = group.get("IpPermissionsEgress", [])
    have = ec2.group_ports(egress)
    drifts = [
        Drift(KIND, name, f"egress tcp/{port} to {sg}", "present", "missing")
        for sg, port in sorted(wanted)
        if (sg, port) not in have
    ]
    drifts += [
        Drift(KIND, name, "egress", "only the attachments' ports", ec2.describe_permission(p))
        for p in ec2.other_permissions(egress, keep=set(wanted))
    ]
    for service_id in sorted({sg for sg, _ in wanted} | {sg for sg, _ in _recorded_rules(record)}):
        service = ec2.describe_security_group(group_id=service_id, region=tenant.region)
        want = {port for sg, port in wanted if sg == service_id}
        if service is None:
            if want:
                drifts.append(Drift("service_sg", service_id, "exists", "present", "missing"))
            continue
        ports, odd = _ours(service, group_id)
        drifts += [
            Drift(
                "service_sg",
                service_id,
                f"ingress tcp/{port} from {group_id}",
                "present",
                "missing",
            )
            for port in sorted(want - ports)
        ]
        drifts += [
            Drift(
                "service_sg", service_id, f"ingress tcp/{port} from {group_id}", "absent", "present"
            )
            for port in sorted(ports - want)
        ]
        drifts += [
            Drift(
                "service_sg",
                service_id,
                f"ingress from {group_id}",
                "absent",
                ec2.describe_permission(p),
            )
            for p in odd
        ]
    return drifts


# --- validation, plan ------------------------------------------------------------------


def template_problems(name: str, template: object) -> list[str]:
    """A variable's template may use {host}, {port} and {tenant} only (``{{`` for a brace)."""
    if not isinstance(template, str):
        return [f"{name}: the value must be text"]
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"{name}: {exc} (write {{{{ and }}}} for a literal brace)"]
    problems = []
    for _, field, spec, conversion in fields:
        if field is None:
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            shown = (
                "{"
                + field
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
            problems.append(f"{name}: {shown} is not one of {{host}}, {{port}}, {{tenant}}")
    return problems


def _vpc_of(tenant: Tenant | None) -> tuple[Network, str]:
    """The VPC an attachment's service must be in: the tenant's, or for a fleet
    attachment the baseline VPC of the console's region."""
    if tenant is not None:
        return tenant_network(tenant), tenant.region
    return baseline_network(settings.AWS_REGION), settings.AWS_REGION


def _security_group_problems(security_group_id: str, tenant: Tenant | None) -> list[str]:
    if not SG_ID_RE.match(security_group_id or ""):
        return [f"security group {security_group_id!r}: an id like sg-0123456789abcdef0"]
    try:
        network, region = _vpc_of(tenant)
        group = ec2.describe_security_group(group_id=security_group_id, region=region)
    except (AwsError, RuntimeError) as exc:
        return [f"security group {security_group_id}: could not check it in AWS ({exc})"]
    if group is None:
        return [f"security group {security_group_id} does not exist in {region}"]
    if group.get("VpcId") != network.vpc_id:
        return [
            f"security group {security_group_id} is in {group.get('VpcId')}, not in the "
            f"tenants' VPC {network.vpc_id}"
        ]
    if security_group_id in (network.function_sg_id, network.database_sg_id):
        # Admitting a tenant into the baseline's own groups would open the fleet's
        # database (or every function) to it.
        return [f"security group {security_group_id} is one of the console's baseline groups"]
    return []


def _taken(tenant: Tenant | None) -> tuple[set[str], set[str]]:
    """Attachment names and variable names already used where the new one applies."""
    scope = (
        Attachment.objects.all()
        if tenant is None
        else Attachment.objects.filter(Q(tenant=tenant) | Q(tenant=None))
    )
    names, variables = set(), set()
    for attachment in scope:
        names.add(attachment.name)
        variables |= set(attachment.variables)
    return names, variables


def attachment_problems(
    name: str,
    host: str,
    port: object,
    security_group_id: str,
    variables: object,
    *,
    tenant: Tenant | None = None,
) -> list[str]:
    """Why this attachment cannot be stored (empty: it can). Checks the text first; only a
    well-formed security group id is looked up (a read) in EC2."""
    problems = []
    if not NAME_RE.match(name or ""):
        problems.append(f"name {name!r}: lower-case letters, digits and dashes (up to 40)")
    if not host or len(host) > 253 or not HOST_RE.match(host):
        problems.append(f"host {host!r}: a host name or an IPv4 address")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        problems.append(f"port {port!r}: a number from 1 to 65535")
    if not isinstance(variables, dict):
        problems.append("variables: NAME -> template")
        variables = {}
    names, taken_vars = _taken(tenant)
    if name in names:
        problems.append(f"name {name!r}: an attachment of that name already applies here")
    for var, template in variables.items():
        reason = reserved_reason(str(var))
        if reason:
            problems.append(f"{var}: {reason}")
        elif var in taken_vars:
            problems.append(f"{var}: another attachment already sets it")
        problems += template_problems(str(var), template)
    if tenant is not None and not tenant.function_in_vpc:
        problems.append(f"{tenant.slug}'s function runs outside the VPC: it cannot reach {host}")
    if tenant is None:
        outside = Tenant.objects.filter(function_in_vpc=False).exclude(
            status__in=(TenantStatus.OFFBOARDING, TenantStatus.OFFBOARDED)
        )
        slugs = sorted(outside.values_list("slug", flat=True))
        if slugs:
            problems.append(
                f"{', '.join(slugs)} run outside the VPC and could not reach a fleet attachment"
            )
    if tenant is not None and tenant.status in (TenantStatus.OFFBOARDING, TenantStatus.OFFBOARDED):
        problems.append(f"{tenant.slug} is {tenant.get_status_display().lower()}")
    if not problems:
        problems += _security_group_problems(security_group_id, tenant)
    elif not SG_ID_RE.match(security_group_id or ""):
        problems.append(f"security group {security_group_id!r}: an id like sg-0123456789abcdef0")
    return problems


def attachments_plan(tenant: Tenant) -> list[str]:
    """Plan lines: what the tenant's function reaches and what that sets up."""
    wanted = desired_rules(tenant)
    if not wanted:
        return []
    lines = []
    for attachment in attachments_for(tenant):
        scope = "fleet" if attachment.tenant_id is None else "tenant"
        variables = ", ".join(sorted(attachment.variables)) or "no variables"
        lines.append(
            f"{attachment.name} ({scope}): {attachment.host}:{attachment.port}, "
            f"{attachment.security_group_id} admits {group_name(tenant.slug)} on "
            f"tcp/{attachment.port}; sets {variables}"
        )
    ports = ", ".join(f"tcp/{port} to {sg}" for sg, port in sorted(wanted))
    lines.append(f"security group {group_name(tenant.slug)}: egress only {ports}")
    return lines

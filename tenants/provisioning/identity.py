"""Step 4: the function's IAM role, least privilege, plus what the tenant's release declares.

The console's own statements let the role read the tenant's own secrets (only those that
exist), write the tenant's own log group, and (only for a function in the VPC) manage the
network interfaces Lambda needs there. AWS's managed AWSLambdaVPCAccessExecutionRole is not
used because it also grants logs:* on every log group.

The release adds its ``permissions`` (tenants.app_settings.Statement, rendered for the
tenant; their Sids get the ``App`` prefix, which no console Sid has) and, for its
``ssm_variables``, ssm:GetParameter(s) on exactly those parameters' ARNs. Everything is
checked (``permission_problems``) before the role is created or its policy written.
"""

from __future__ import annotations

import json
import re
from typing import Any

from opsconsole.aws import iam
from opsconsole.aws.errors import AwsError
from tenants import naming, release_source, resources
from tenants.app_settings import AppSettings, Statement
from tenants.models import Isolation, Tenant
from tenants.provisioning.common import Drift, account_id, tags_for, tenant_network, tenant_of
from tenants.provisioning.function_config import ssm_parameter_names

POLICY_NAME = "opsconsole-tenant"
# IAM's limit on a role's inline policies, together, in characters (whitespace not counted).
INLINE_POLICY_LIMIT = 10_240
APP_SID_PREFIX = "App"
# Twelve digits, as an account id: permission_problems measures without asking STS.
_PLACEHOLDER_ACCOUNT = "000000000000"
# Actions that support no resource scoping and read or write no tenant's data: the only
# ones a release may grant on every resource ("*").
STAR_RESOURCE_ACTIONS = frozenset(
    {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
        "cloudwatch:PutMetricData",
    }
)
# Services whose actions change who may do what: the console alone manages the role.
REFUSED_SERVICES = frozenset({"iam", "organizations", "sso"})
_SLUG_CHAR = re.compile(r"[a-z0-9-]")


def secret_arns(tenant: Tenant) -> list[str]:
    arns = []
    for kind in ("db_secret", "env_secret"):
        record = resources.find(tenant, kind=kind)
        if record and record.arn and record.status == "present":
            arns.append(record.arn)
    return arns


def parameter_arn(name: str, *, region: str, account: str) -> str:
    # A hierarchical name's leading slash is not repeated after "parameter".
    return f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


# Secrets Manager ends every ARN with "-" and six random characters, known only once the
# secret exists; an estimate of the policy (its size, checked before anything is created)
# stands in the six-character wildcard IAM documents for it, of the same length.
_ARN_SUFFIX_WILDCARD = "??????"


def console_statements(tenant: Tenant, *, account: str, estimate: bool = False) -> list[dict]:
    """The console's least-privilege statements. ``estimate``: for a tenant not yet
    provisioned, the secrets it will have, by name (their ARNs' random suffix unknown)."""
    region = tenant.region
    log_group = f"arn:aws:logs:{region}:{account}:log-group:{naming.log_group_name(tenant.slug)}"
    # An unsaved tenant has no records (Django refuses to filter by it).
    secrets = secret_arns(tenant) if tenant.pk is not None else []
    if estimate and not secrets:
        names = [naming.env_secret_name(tenant.slug)] if tenant.secret_env_names else []
        if tenant.isolation != Isolation.NONE:
            names.insert(0, naming.db_secret_name(tenant.slug))
        secrets = [
            f"arn:aws:secretsmanager:{region}:{account}:secret:{n}-{_ARN_SUFFIX_WILDCARD}"
            for n in names
        ]
    elif (
        not estimate
        and tenant.isolation != Isolation.NONE
        and not resources.find(tenant, kind="db_secret")
    ):
        raise RuntimeError("The tenant's database secret is not recorded yet (step 3).")
    statements: list[dict] = []
    if secrets:
        statements.append(
            {
                "Sid": "ReadOwnSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": secrets,
            }
        )
    statements.append(
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [f"{log_group}:*", f"{log_group}:log-stream:*"],
        }
    )
    if tenant.function_in_vpc:
        statements += _vpc_statements(tenant, account=account, estimate=estimate)
    return statements


def _vpc_statements(tenant: Tenant, *, account: str, estimate: bool) -> list[dict]:
    region = tenant.region
    if estimate and (tenant.pk is None or not resources.find(tenant, kind="network")):
        # Measured, not applied: three subnets and a group, as the baseline has.
        subnets, group = [f"subnet-{i:017x}" for i in range(3)], "sg-" + "0" * 17
    else:
        network = tenant_network(tenant)
        subnets, group = network.subnet_ids, network.function_sg_id
    return [
        {
            # Describe calls support no resource scoping in IAM.
            "Sid": "DescribeNetworkInterfaces",
            "Effect": "Allow",
            "Action": ["ec2:DescribeNetworkInterfaces"],
            "Resource": "*",
        },
        {
            "Sid": "VpcAccessInTenantSubnets",
            "Effect": "Allow",
            "Action": [
                "ec2:CreateNetworkInterface",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            "Resource": [
                f"arn:aws:ec2:{region}:{account}:network-interface/*",
                *(f"arn:aws:ec2:{region}:{account}:subnet/{s}" for s in subnets),
                f"arn:aws:ec2:{region}:{account}:security-group/{group}",
            ],
        },
    ]


def app_sid(statement: Statement, index: int) -> str:
    """The Sid a declared statement gets: the console's own Sids never start with App."""
    return f"{APP_SID_PREFIX}{statement.sid or f'Stmt{index + 1}'}"


def app_statements(tenant: Tenant, app: AppSettings, *, account: str) -> list[dict]:
    """The release's statements rendered for the tenant, then the read of its SSM
    parameters (exactly their ARNs).

    No kms:Decrypt: SecureString parameters under the default key (aws/ssm) are decrypted
    for any principal of the account that may read the parameter (the key's own policy,
    through SSM only); a customer managed key is named nowhere in the release, so a
    statement for it would need a wildcard. A release using one declares kms:Decrypt on
    that key in ``permissions`` (with kms:ViaService ssm.<region>.amazonaws.com). The
    console itself reads the values at each deployment, so the code needs neither.
    """
    out = []
    for index, statement in enumerate(app.permissions):
        rendered = statement.rendered(tenant=tenant.slug, account=account, region=tenant.region)
        out.append({"Sid": app_sid(statement, index), **_without_sid(rendered)})
    if app.ssm_variables:
        names = ssm_parameter_names(tenant, app, account=account)
        arns = sorted(
            {parameter_arn(n, region=tenant.region, account=account) for n in names.values()}
        )
        out.append(
            {
                "Sid": "ReadOwnParameters",
                "Effect": "Allow",
                "Action": ["ssm:GetParameter", "ssm:GetParameters"],
                "Resource": arns,
            }
        )
    return out


def _without_sid(statement: dict) -> dict:
    return {k: v for k, v in statement.items() if k != "Sid"}


def policy_document(
    tenant: Tenant,
    app: AppSettings | None = None,
    *,
    account: str | None = None,
    estimate: bool = False,
) -> dict:
    account = account or account_id(tenant.region)
    statements = console_statements(tenant, account=account, estimate=estimate)
    if app is not None:
        statements += app_statements(tenant, app, account=account)
    return {"Version": "2012-10-17", "Statement": statements}


# --- checks before anything is created -------------------------------------------------


def _resource_part(arn: str) -> str:
    """What follows the ARN's service, region and account: the resource's own name."""
    parts = arn.split(":", 5)
    return parts[5] if len(parts) == 6 else arn


READ_ONLY_PREFIXES = ("Get", "List", "Head", "Describe")


def read_only(actions: list[str]) -> bool:
    """Every action only reads (s3:GetObject, s3:List*, ssm:GetParameter)."""
    return all(a.split(":", 1)[1].startswith(READ_ONLY_PREFIXES) for a in actions)


def _reach_problem(template: str, others: set[str], *, reads_only: bool = False) -> str | None:
    """Why a resource template may reach another tenant's resources, or None.

    The rule: a wildcard (* or ?) in the resource's own name must come after ``{tenant}``,
    and ``{tenant}`` must be followed by a character no slug has (a slug is letters,
    digits and hyphens: ``{tenant}-*`` or ``{tenant}*`` also match tenant ``<slug>-x``).
    A resource without a wildcard names one thing, the same for every tenant (a shared
    bucket, a team's queue): allowed, unless it names another tenant (its slug or its
    ``opsconsole-<slug>`` names, as a path segment). A statement that only reads may use
    a wildcard before or without ``{tenant}``: content every tenant's app serves alike (a
    team's exercise videos under ``arn:aws:s3:::videos/*``) is no tenant's own data; the
    plan says the tenants share it. Writing is kept to the tenant's own prefix.
    """
    part = _resource_part(template)
    wildcard = min((i for i in (part.find("*"), part.find("?")) if i >= 0), default=-1)
    at = part.find("{tenant}")
    if wildcard >= 0:
        if (at < 0 or at > wildcard) and not reads_only:
            return (
                "a wildcard that does not come after {tenant} reaches every tenant's "
                "(allowed only for statements that just read: Get, List, Head, Describe)"
            )
        if at < 0 or at > wildcard:
            return _named_other(part, others)
        after = part[at + len("{tenant}") : at + len("{tenant}") + 1]
        if after and (_SLUG_CHAR.match(after) or after in "*?"):
            return (
                f"{{tenant}} followed by {after!r} also matches other tenants whose slug "
                "starts with this one's: put a / or : after {tenant}"
            )
    return _named_other(part, others)


def _named_other(part: str, others: set[str]) -> str | None:
    segments = set(re.split(r"[/:]", part.replace("{tenant}", "\0")))
    named = sorted(segments & others)
    if named:
        return f"names another tenant's resources ({named[0]})"
    return None


def _other_tenant_names(tenant: Tenant) -> set[str]:
    slugs = set(Tenant.objects.exclude(slug=tenant.slug).values_list("slug", flat=True))
    return slugs | {naming.resource_prefix(s) for s in slugs}


def permission_problems(tenant: Tenant, app: AppSettings) -> list[str]:
    """What is wrong with the role policy ``tenant`` would get under ``app`` (empty: none).
    Reads no AWS: the forms call it before the tenant exists, the role step before it
    creates or writes anything. Checks:

    - the policy fits IAM's inline limit (10,240 characters, whitespace not counted);
    - no two statements share a Sid (declared Sids get the App prefix, so they can clash
      with each other, never with the console's);
    - no Allow statement grants iam:/organizations:/sso: actions (the role could widen
      itself), nor any action on every resource ("*") beyond X-Ray's and
      cloudwatch:PutMetricData, which support no resource scoping and hold no tenant's data;
    - no Allow resource reaches another tenant's: see ``_reach_problem`` for the rule; an
      SSM variable's parameter (no wildcards: the schema refuses them) may be shared by
      every tenant (/shared/sentry-dsn) but may not name another tenant. Deny statements
      only take away, so only the size and Sid checks apply to them.
    """
    problems = []
    others = _other_tenant_names(tenant)
    for index, statement in enumerate(app.permissions):
        where = f"permissions[{index}] ({app_sid(statement, index)})"
        if statement.effect != "Allow":
            continue
        refused = sorted({a for a in statement.action if a.split(":")[0] in REFUSED_SERVICES})
        if refused:
            problems.append(
                f"{where}: {refused[0]} is refused: the console alone manages the role's "
                "permissions"
            )
        for resource in statement.resource:
            if resource == "*":
                broad = sorted(set(statement.action) - STAR_RESOURCE_ACTIONS)
                if broad:
                    problems.append(
                        f"{where}: {broad[0]} on every resource (*) reaches every tenant's: "
                        "name the resources, with {tenant}"
                    )
                continue
            if statement.shared and not read_only(statement.action):
                problems.append(
                    f"{where}: Shared statements may only read (Get, List, Head, Describe): "
                    "what a tenant writes goes under its own {tenant} prefix"
                )
                break
            reason = _reach_problem(resource, others, reads_only=statement.shared)
            if reason:
                problems.append(f"{where}: {resource}: {reason}")
    for var, template in app.ssm_variables.items():
        segments = set(template.strip("/").replace("{tenant}", "\0").split("/"))
        named = sorted(segments & others)
        if named:
            problems.append(
                f"ssm_variables.{var}: {template}: names another tenant's parameter ({named[0]})"
            )
    document = policy_document(tenant, app, account=_PLACEHOLDER_ACCOUNT, estimate=True)
    sids = [s.get("Sid") for s in document["Statement"] if s.get("Sid")]
    for sid in sorted({s for s in sids if sids.count(s) > 1}):
        problems.append(f"Sid {sid} is given to more than one statement")
    size = len(json.dumps(document, separators=(",", ":")))
    if size > INLINE_POLICY_LIMIT:
        problems.append(
            f"The role's policy would be {size} characters; IAM allows {INLINE_POLICY_LIMIT} "
            "for a role's inline policies: merge statements or use fewer resources"
        )
    return problems


def permissions_plan(tenant: Tenant, app: AppSettings) -> list[str]:
    """One line per action and resource the release adds to the role, for the plan
    ("s3:GetObject on arn:aws:s3:::bucket/acme/*"). The account shows as {account} when
    it is not known without asking AWS."""
    lines = []
    shared = {r for st in app.permissions for r in st.resource if "{tenant}" not in r}
    for statement in app_statements(tenant, app, account="{account}"):
        verb = "" if statement["Effect"] == "Allow" else "deny "
        condition = " (with a condition)" if statement.get("Condition") else ""
        resources_ = statement["Resource"]
        for action in statement["Action"]:
            for resource in [resources_] if isinstance(resources_, str) else resources_:
                alike = " (the same for every tenant)" if resource in shared else ""
                lines.append(f"{verb}{action} on {resource}{condition}{alike}")
    return lines


# --- the step, drift, offboarding ----------------------------------------------------------


def release_settings(tenant: Tenant, version: str | None = None) -> AppSettings:
    """The app settings of ``version`` (default: the release the tenant should run)."""
    from tenants.provisioning.function import resolve_release

    version = version or resolve_release(tenant)
    return release_source.get().artifact(version, region=tenant.region).app_settings


def refuse_bad_permissions(tenant: Tenant, app: AppSettings) -> None:
    problems = permission_problems(tenant, app)
    if problems:
        raise RuntimeError("The release's permissions are refused: " + "; ".join(problems))


def converge_policy(tenant: Tenant, app: AppSettings) -> bool:
    """A deployment's part: the role's policy for the release it puts on the tenant (its
    permissions and SSM parameters), checked first. True when written."""
    refuse_bad_permissions(tenant, app)
    return apply_policy(tenant, app)


def apply_policy(tenant: Tenant, app: AppSettings, *, created: bool = False) -> bool:
    """Write the role's policy for ``app`` when it differs; True when written."""
    name = naming.role_name(tenant.slug)
    wanted = policy_document(tenant, app)
    if created or iam.get_role_policy(role=name, policy_name=POLICY_NAME) != wanted:
        iam.put_role_policy(role=name, policy_name=POLICY_NAME, document=wanted)
        return True
    return False


def step_role(job, step) -> dict:
    tenant = tenant_of(job)
    name = naming.role_name(tenant.slug)
    app = release_settings(tenant)
    # Before the role exists: nothing is created for a release that cannot have it.
    refuse_bad_permissions(tenant, app)
    created = False
    if resources.find(tenant, kind="role") is None:
        # Never recorded: most likely new, so create first and adopt on a name clash (a
        # crash after CreateRole); saves a lookup per onboarding.
        try:
            role = iam.create_role(
                name=name, tags=tags_for(tenant), description=f"opsconsole tenant {tenant.slug}"
            )
            created = True
        except AwsError as exc:
            if exc.code != "EntityAlreadyExists":
                raise
            role = iam.get_role(name=name)
    else:
        role = iam.get_role(name=name)
        if role is None:
            role = iam.create_role(
                name=name, tags=tags_for(tenant), description=f"opsconsole tenant {tenant.slug}"
            )
            created = True
    written = apply_policy(tenant, app, created=created)
    resources.record(
        tenant,
        kind="role",
        name=name,
        identifier=role["RoleId"],
        arn=role["Arn"],
        details={"policy": POLICY_NAME},
    )
    return {"role_arn": role["Arn"], "created": created, "policy_written": written}


def statement_drift(name: str, current: dict | None, wanted: dict) -> list[Drift]:
    """Which statements differ, by Sid: missing, extra, or changed."""
    if current is None:
        return [Drift("role", name, "policy", POLICY_NAME, "missing")]
    have = {s.get("Sid", f"#{i}"): s for i, s in enumerate(current.get("Statement", []))}
    want = {s.get("Sid", f"#{i}"): s for i, s in enumerate(wanted["Statement"])}
    drifts = []
    for sid in sorted(set(have) | set(want)):
        if sid not in have:
            drifts.append(Drift("role", name, f"statement {sid}", "present", "missing"))
        elif sid not in want:
            drifts.append(Drift("role", name, f"statement {sid}", "absent", "present"))
        elif _normal(have[sid]) != _normal(want[sid]):
            drifts.append(
                Drift("role", name, f"statement {sid}", _summary(want[sid]), _summary(have[sid]))
            )
    if not drifts and current.get("Version") != wanted["Version"]:
        drifts.append(
            Drift("role", name, "policy Version", wanted["Version"], current.get("Version"))
        )
    return drifts


def _normal(statement: dict) -> dict:
    # IAM takes one action or resource as a string or a one-item list: the same grant.
    out = dict(statement)
    for key in ("Action", "Resource"):
        if isinstance(out.get(key), str):
            out[key] = [out[key]]
    return out


def _summary(statement: dict[str, Any]) -> str:
    return json.dumps(_normal(statement), sort_keys=True)


def role_drift(tenant: Tenant) -> list[Drift]:
    name = naming.role_name(tenant.slug)
    if iam.get_role(name=name) is None:
        return [Drift("role", name, "exists", "present", "missing")]
    current = iam.get_role_policy(role=name, policy_name=POLICY_NAME)
    try:
        version = tenant.desired_release or tenant.current_release
        app = release_settings(tenant, version) if version else None
        wanted = policy_document(tenant, app)
    except (RuntimeError, LookupError) as exc:
        return [Drift("role", name, "policy", "computable", str(exc))]
    return statement_drift(name, current, wanted)


def step_delete_role(job, step) -> dict:
    tenant = tenant_of(job)
    name = naming.role_name(tenant.slug)
    deleted = iam.delete_role(name=name)
    resources.mark(tenant, kind="role", name=name, status="deleted")
    return {"role": name, "deleted": deleted}

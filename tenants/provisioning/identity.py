"""Step 4: the function's IAM role, least privilege.

The role may read the tenant's own secrets, write the tenant's own log group, and manage
the network interfaces Lambda needs in the VPC. Nothing else, and nothing of any other
tenant: AWS's managed AWSLambdaVPCAccessExecutionRole is not used because it also grants
logs:* on every log group.
"""

from __future__ import annotations

from opsconsole.aws import iam
from opsconsole.aws.errors import AwsError
from tenants import naming, resources
from tenants.models import Tenant
from tenants.provisioning.common import Drift, account_id, tags_for, tenant_network, tenant_of

POLICY_NAME = "opsconsole-tenant"


def secret_arns(tenant: Tenant) -> list[str]:
    arns = []
    for kind in ("db_secret", "env_secret"):
        record = resources.find(tenant, kind=kind)
        if record and record.arn and record.status == "present":
            arns.append(record.arn)
    return arns


def policy_document(tenant: Tenant) -> dict:
    region = tenant.region
    account = account_id(region)
    log_group = f"arn:aws:logs:{region}:{account}:log-group:{naming.log_group_name(tenant.slug)}"
    network = tenant_network(tenant)
    secrets = secret_arns(tenant)
    if not secrets:
        raise RuntimeError("The tenant's database secret is not recorded yet (step 3).")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadOwnSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": secrets,
            },
            {
                "Sid": "WriteOwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [f"{log_group}:*", f"{log_group}:log-stream:*"],
            },
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
                    *(f"arn:aws:ec2:{region}:{account}:subnet/{s}" for s in network.subnet_ids),
                    f"arn:aws:ec2:{region}:{account}:security-group/{network.function_sg_id}",
                ],
            },
        ],
    }


def step_role(job, step) -> dict:
    tenant = tenant_of(job)
    name = naming.role_name(tenant.slug)
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
    wanted = policy_document(tenant)
    if created or iam.get_role_policy(role=name, policy_name=POLICY_NAME) != wanted:
        iam.put_role_policy(role=name, policy_name=POLICY_NAME, document=wanted)
    resources.record(
        tenant,
        kind="role",
        name=name,
        identifier=role["RoleId"],
        arn=role["Arn"],
        details={"policy": POLICY_NAME},
    )
    return {"role_arn": role["Arn"], "created": created}


def role_drift(tenant: Tenant) -> list[Drift]:
    name = naming.role_name(tenant.slug)
    if iam.get_role(name=name) is None:
        return [Drift("role", name, "exists", "present", "missing")]
    current = iam.get_role_policy(role=name, policy_name=POLICY_NAME)
    try:
        wanted = policy_document(tenant)
    except RuntimeError as exc:
        return [Drift("role", name, "policy", "recorded secrets", str(exc))]
    if current != wanted:
        return [Drift("role", name, "policy", "least-privilege policy", "differs")]
    return []


def step_delete_role(job, step) -> dict:
    tenant = tenant_of(job)
    name = naming.role_name(tenant.slug)
    deleted = iam.delete_role(name=name)
    resources.mark(tenant, kind="role", name=name, status="deleted")
    return {"role": name, "deleted": deleted}

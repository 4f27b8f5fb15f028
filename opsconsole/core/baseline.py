"""The account baseline: what must already exist in AWS before tenants can be onboarded.

Checked by the ``account_check`` job; the sandbox seed creates it, production gets it from
the platform team's own infrastructure code. Each check raises a ``BaselineMissing`` that
says what is missing and how it is named, so the fix is obvious.
"""

from __future__ import annotations

from django.conf import settings

from opsconsole.aws import ec2, ecr, rds, s3, secrets, sts


class BaselineMissing(Exception):
    pass


def _region(job) -> str | None:
    """The region checked: the job's (an AWS account's check, per region), else the
    console's own."""
    return (job.params or {}).get("region") or None


def check_identity(job, step) -> dict:
    return sts.get_caller_identity(region=_region(job))


def check_network(job, step) -> dict:
    names = settings.BASELINE
    region = _region(job)
    vpc = ec2.find_vpc(name=names["vpc_name"], region=region)
    if vpc is None:
        raise BaselineMissing(f"No VPC tagged Name={names['vpc_name']}.")
    subnets = ec2.list_private_subnets(vpc_id=vpc["VpcId"], region=region)
    zones = {s["AvailabilityZone"] for s in subnets}
    if len(zones) < 2:
        raise BaselineMissing(
            f"VPC {vpc['VpcId']} needs private subnets (tag Tier=private) in two availability "
            f"zones; found {len(subnets)} in {len(zones)}."
        )
    groups = {}
    for key in ("function_sg_name", "database_sg_name"):
        sg = ec2.find_security_group(vpc_id=vpc["VpcId"], name=names[key], region=region)
        if sg is None:
            raise BaselineMissing(f"No security group {names[key]} in {vpc['VpcId']}.")
        groups[key.removesuffix("_name")] = sg["GroupId"]
    return {
        "vpc_id": vpc["VpcId"],
        "subnet_ids": [s["SubnetId"] for s in subnets],
        "availability_zones": sorted(zones),
        **groups,
    }


def check_shared_database(job, step) -> dict:
    names = settings.BASELINE
    region = _region(job)
    instance = rds.describe_db_instance(identifier=names["shared_db_instance"], region=region)
    if instance is None:
        raise BaselineMissing(f"No RDS instance {names['shared_db_instance']}.")
    secret = secrets.describe_secret(secret_id=names["shared_db_master_secret"], region=region)
    if secret is None:
        raise BaselineMissing(f"No master secret {names['shared_db_master_secret']}.")
    endpoint = instance.get("Endpoint") or {}
    return {
        "instance": instance["DBInstanceIdentifier"],
        "status": instance.get("DBInstanceStatus", ""),
        "engine": f"{instance.get('Engine', '')} {instance.get('EngineVersion', '')}".strip(),
        "endpoint": f"{endpoint.get('Address', '')}:{endpoint.get('Port', '')}",
        "master_secret_arn": secret["ARN"],
    }


def check_release_repository(job, step) -> dict:
    name = settings.BASELINE["release_repository"]
    repo = ecr.describe_repository(name=name, region=_region(job))
    if repo is None:
        raise BaselineMissing(f"No ECR repository {name}.")
    return {"repository_uri": repo["repositoryUri"]}


def check_artifact_bucket(job, step) -> dict:
    bucket = settings.BASELINE["artifact_bucket"]
    if not s3.bucket_exists(bucket=bucket, region=_region(job)):
        raise BaselineMissing(f"No S3 bucket {bucket}.")
    return {"bucket": bucket}


ACCOUNT_CHECK_STEPS = [
    ("identity", "AWS identity", check_identity),
    ("network", "VPC, private subnets, security groups", check_network),
    ("shared_database", "Shared RDS instance and master secret", check_shared_database),
    ("release_repository", "ECR release repository", check_release_repository),
    ("artifact_bucket", "S3 artifacts bucket", check_artifact_bucket),
]
# A cell's account: its release repository and artifacts bucket are made by the console
# the first time a tenant there needs a release (deployments.artifacts; the console's
# bucket name is taken there, S3 names being global), so they are not checked.
CELL_CHECK_STEPS = ACCOUNT_CHECK_STEPS[:3]

"""The sandbox seed: the account baseline and the demo releases, in the local AWS's account.

The local AWS keeps no state across restarts, so ``make run`` calls this at every start.
Each part looks up what exists by its deterministic name, creates what is missing and
leaves the rest alone: a second call changes nothing. The console database does keep
state, so the demo releases are registered once and their artifacts are rebuilt byte for
byte (same digests) into every fresh local AWS.

Production never runs this: there the platform team's own infrastructure code builds the
baseline that the ``account_check`` job verifies.
"""

from __future__ import annotations

import logging
import secrets as pysecrets
from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from deployments.models import ArtifactType, Release, ReleaseMigration
from deployments.releases import release_start_new_tenants_on
from opsconsole.aws import ec2, ecr, rds, s3, secrets
from opsconsole.sandbox.demo_release import (
    DEMO_VERSION,
    DEMO_VERSIONS,
    DemoRelease,
    build_demo_release,
)

logger = logging.getLogger(__name__)

MANAGED_TAGS = {"ManagedBy": "opsconsole"}
VPC_CIDR = "10.40.0.0/16"
# One /20 per availability zone, by the zone's position among the first two.
PRIVATE_SUBNET_CIDRS = ("10.40.0.0/20", "10.40.16.0/20")
POSTGRES_PORT = 5432
SHARED_DB_CLASS = "db.t4g.medium"
SHARED_DB_ENGINE_VERSION = "16.4"
SHARED_DB_STORAGE_GB = 50
DEMO_HEALTH_TIMEOUT_S = 15


def _tags(component: str) -> dict[str, str]:
    return {**MANAGED_TAGS, "Component": component}


# New tenants start on this one when the seed registers it and no operator chose another:
# the newest demo release is broken on purpose (to be deployed and halted at its canary),
# never one to start a customer on.
START_NEW_TENANTS_ON = "2026.12.0-demo"


def sandbox_seed(*, region: str | None = None, releases: Sequence[str] = (DEMO_VERSION,)) -> dict:
    """Make sure the sandbox account has the baseline and the demo ``releases``; say what
    it has.

    ``make run`` seeds all three demo releases (``manage.py sandbox_seed``). The default
    is the first alone: a new tenant starts on the newest registered release, and tests
    that onboard tenants want that to be a working one.

    Returns a flat summary (ids, names, the first demo release; ``releases``, the demo
    versions registered) plus ``created``: what this call created or changed, empty when
    everything was already there.
    """
    if not settings.SANDBOX:
        raise ImproperlyConfigured(
            "sandbox_seed only runs in the sandbox (OPSCONSOLE_SANDBOX=1); production gets "
            "its baseline from the platform team's infrastructure code."
        )
    region = region or settings.AWS_REGION
    created: list[str] = []
    warnings: list[str] = []
    # In version order: the newest registered is the newest version.
    demos = [build_demo_release(v) for v in DEMO_VERSIONS if v in releases]
    if not demos:
        raise ValueError(f"No demo release among {releases}; they are {DEMO_VERSIONS}.")

    network = _ensure_network(region=region, created=created)
    database = _ensure_shared_database(region=region, network=network, created=created)
    image = _ensure_release_images(region=region, demos=demos, created=created)
    artifact = _ensure_artifact_zips(region=region, demos=demos, created=created)
    registered = [
        _ensure_demo_release(demo=d, bucket=artifact["bucket"], created=created, warnings=warnings)
        for d in demos
    ]
    start_on = next((r for r in registered if r.version == START_NEW_TENANTS_ON), None)
    if start_on is not None and not Release.objects.filter(starts_new_tenants=True).exists():
        release_start_new_tenants_on(start_on)
        created.append(f"new tenants start on {start_on.version}")

    summary = {
        "region": region,
        **network,
        **database,
        **image,
        **artifact,
        "release_id": registered[0].pk,
        "release_version": registered[0].version,
        "release_artifact_type": registered[0].artifact_type,
        "releases": [release.version for release in registered],
        "created": created,
        "warnings": warnings,
    }
    logger.info(
        "Sandbox seed in %s: %s", region, ", ".join(created) if created else "nothing to create"
    )
    return summary


# --- network ----------------------------------------------------------------------------


def _ensure_network(*, region: str, created: list[str]) -> dict:
    names = settings.BASELINE
    vpc_name = names["vpc_name"]
    vpc = ec2.find_vpc(name=vpc_name, region=region)
    if vpc is None:
        vpc = ec2.create_vpc(name=vpc_name, cidr=VPC_CIDR, tags=_tags("network"), region=region)
        created.append(f"vpc {vpc['VpcId']}")
    vpc_id = vpc["VpcId"]

    zones = ec2.list_availability_zones(region=region)[: len(PRIVATE_SUBNET_CIDRS)]
    if len(zones) < len(PRIVATE_SUBNET_CIDRS):
        raise RuntimeError(f"{region} has fewer than two availability zones: {zones}")
    subnets = []
    for zone, cidr in zip(zones, PRIVATE_SUBNET_CIDRS, strict=True):
        name = f"{vpc_name}-private-{zone}"
        subnet = ec2.find_subnet(vpc_id=vpc_id, name=name, region=region)
        if subnet is None:
            subnet = ec2.create_subnet(
                vpc_id=vpc_id,
                name=name,
                cidr=cidr,
                availability_zone=zone,
                tags={**_tags("network"), "Tier": "private"},
                region=region,
            )
            created.append(f"subnet {subnet['SubnetId']} ({zone})")
        subnets.append(subnet)

    function_sg = _ensure_security_group(
        vpc_id=vpc_id,
        name=names["function_sg_name"],
        description="opsconsole tenant Lambda functions",
        region=region,
        created=created,
    )
    database_sg = _ensure_security_group(
        vpc_id=vpc_id,
        name=names["database_sg_name"],
        description="opsconsole tenant databases: PostgreSQL from tenant functions",
        region=region,
        created=created,
    )
    # Functions reach their database, the console's workers, AWS APIs: all egress.
    if not ec2.allows_all_egress(function_sg):
        ec2.authorize_all_egress(group_id=function_sg["GroupId"], region=region)
        created.append(f"egress rule on {function_sg['GroupId']}")
    if not ec2.allows_ingress_from_group(
        database_sg, source_group_id=function_sg["GroupId"], port=POSTGRES_PORT
    ):
        ec2.authorize_ingress_from_group(
            group_id=database_sg["GroupId"],
            source_group_id=function_sg["GroupId"],
            port=POSTGRES_PORT,
            description="PostgreSQL from tenant functions",
            region=region,
        )
        created.append(f"ingress rule {function_sg['GroupId']} -> {database_sg['GroupId']}:5432")

    return {
        "vpc_id": vpc_id,
        "vpc_name": vpc_name,
        "subnet_ids": [s["SubnetId"] for s in subnets],
        "availability_zones": zones,
        "function_sg_id": function_sg["GroupId"],
        "database_sg_id": database_sg["GroupId"],
    }


def _ensure_security_group(
    *, vpc_id: str, name: str, description: str, region: str, created: list[str]
) -> dict:
    group = ec2.find_security_group(vpc_id=vpc_id, name=name, region=region)
    if group is None:
        group = ec2.create_security_group(
            vpc_id=vpc_id, name=name, description=description, tags=_tags("network"), region=region
        )
        created.append(f"security group {group['GroupId']} ({name})")
    return group


# --- shared database --------------------------------------------------------------------


def _local_pg_password() -> str:
    """The password of the local PostgreSQL the sandbox maps RDS endpoints to.

    Known only when the sandbox user is the one the console itself connects as; a local
    server that trusts local connections needs none.
    """
    db = settings.DATABASES["default"]
    if (db.get("USER") or "") == settings.SANDBOX_PG_USER:
        return db.get("PASSWORD") or ""
    return ""


def _ensure_shared_database(*, region: str, network: dict, created: list[str]) -> dict:
    names = settings.BASELINE
    identifier = names["shared_db_instance"]
    subnet_group = f"{network['vpc_name']}-private"
    if rds.describe_db_subnet_group(name=subnet_group, region=region) is None:
        rds.create_db_subnet_group(
            name=subnet_group,
            description="opsconsole private subnets for tenant databases",
            subnet_ids=network["subnet_ids"],
            tags=_tags("database"),
            region=region,
        )
        created.append(f"db subnet group {subnet_group}")

    password = _local_pg_password()
    instance = rds.describe_db_instance(identifier=identifier, region=region)
    if instance is None:
        rds.create_db_instance(
            identifier=identifier,
            instance_class=SHARED_DB_CLASS,
            engine="postgres",
            engine_version=SHARED_DB_ENGINE_VERSION,
            allocated_storage_gb=SHARED_DB_STORAGE_GB,
            master_username=settings.SANDBOX_PG_USER,
            # RDS wants 8+ characters. moto stores it and never checks it; what the secret
            # holds is what opens the local server behind the fake endpoint.
            master_password=password if len(password) >= 8 else pysecrets.token_urlsafe(24),
            subnet_group=subnet_group,
            security_group_ids=[network["database_sg_id"]],
            tags=_tags("database"),
            region=region,
        )
        created.append(f"db instance {identifier}")
        instance = rds.describe_db_instance(identifier=identifier, region=region)
    endpoint = (instance or {}).get("Endpoint") or {}
    if not endpoint.get("Address"):
        raise RuntimeError(f"RDS instance {identifier} has no endpoint yet; seed again later.")

    # The shape RDS and Secrets Manager rotation use for PostgreSQL master credentials.
    # The host stays the RDS endpoint, as in a real account; the sandbox maps it elsewhere.
    value = {
        "engine": "postgres",
        "host": endpoint["Address"],
        "port": int(endpoint.get("Port") or POSTGRES_PORT),
        "username": settings.SANDBOX_PG_USER,
        "password": password,
        "dbname": "postgres",
    }
    secret_name = names["shared_db_master_secret"]
    secret = secrets.describe_secret(secret_id=secret_name, region=region)
    if secret is None:
        secret = secrets.create_secret_json(
            name=secret_name,
            value=value,
            description=f"Master credentials of RDS instance {identifier}",
            tags=_tags("database"),
            region=region,
        )
        created.append(f"secret {secret_name}")
    else:
        if secret.get("DeletedDate"):
            secrets.restore_secret(secret_id=secret_name, region=region)
            created.append(f"secret {secret_name} restored")
        if secrets.get_secret_json(secret_id=secret_name, region=region) != value:
            secrets.put_secret_json(secret_id=secret_name, value=value, region=region)
            created.append(f"secret {secret_name} new version")

    return {
        "db_subnet_group": subnet_group,
        "db_instance": identifier,
        "db_endpoint": f"{value['host']}:{value['port']}",
        "master_secret_name": secret_name,
        "master_secret_arn": secret["ARN"],
    }


# --- artifacts --------------------------------------------------------------------------


def _ensure_release_images(*, region: str, demos: list[DemoRelease], created: list[str]) -> dict:
    """Each demo release's image form in the release repository, tagged with its version
    (for the image code paths: register by tag, pin by digest, copy to other regions)."""
    repository = settings.BASELINE["release_repository"]
    repo = ecr.describe_repository(name=repository, region=region)
    if repo is None:
        repo = ecr.create_repository(name=repository, tags=_tags("releases"), region=region)
        created.append(f"ecr repository {repository}")
    pushed = [
        ecr.push_image(
            repository=repository,
            tag=demo.version,
            config_blob=demo.image_config,
            layers=list(demo.image_layers),
            region=region,
        )
        for demo in demos
    ]
    created.extend(f"image {p['uri']}" for p in pushed if p["manifest_put"])
    return {
        "repository_uri": repo["repositoryUri"],
        "image_uri": pushed[0]["uri"],
        "image_digest": pushed[0]["digest"],
    }


def _ensure_artifact_zips(*, region: str, demos: list[DemoRelease], created: list[str]) -> dict:
    bucket = settings.BASELINE["artifact_bucket"]
    if not s3.bucket_exists(bucket=bucket, region=region):
        s3.create_bucket(bucket=bucket, tags=_tags("releases"), region=region)
        created.append(f"bucket {bucket}")
    for demo in demos:
        # The key is the content's sha256: an object that exists is the right one.
        if s3.head_object(bucket=bucket, key=demo.zip_key, region=region) is None:
            s3.put_object(
                bucket=bucket,
                key=demo.zip_key,
                body=demo.zip_bytes,
                content_type="application/zip",
                metadata={"release": demo.version},
                region=region,
            )
            created.append(f"s3://{bucket}/{demo.zip_key}")
    return {"bucket": bucket, "zip_key": demos[0].zip_key, "zip_sha256": demos[0].zip_sha256}


# --- the demo releases ------------------------------------------------------------------


def _ensure_demo_release(
    *, demo: DemoRelease, bucket: str, created: list[str], warnings: list[str]
) -> Release:
    """Register a demo release once; a registered release is never changed.

    It is registered as the zip, not the image, though both are pushed:
    - the zip is a real deployment package (python3.12, ``app.handler``, pg8000 inside)
      that runs on AWS Lambda and on the local AWS alike; the image is only the app layer
      over no runtime, fit for exercising the image code paths (push, pin by digest);
    - a zip function's CodeSha256 is the sha256 of the zip, which the deploy checks.
    The image stays in ECR as the same release's image form, for the image paths.
    """
    with transaction.atomic():
        release, was_created = Release.objects.get_or_create(
            version=demo.version,
            defaults={
                "notes": demo.notes,
                "artifact_type": ArtifactType.ZIP,
                "zip_bucket": bucket,
                "zip_key": demo.zip_key,
                "zip_sha256": demo.zip_sha256,
                "runtime": demo.runtime,
                "handler": demo.handler,
                "architecture": "x86_64",
                "memory_mb": 256,
                "timeout_s": 30,
                # Its own route; the check of a new version is its first request, so a cold
                # start: Python, boto3 and the driver loaded, the secret read, a database
                # connection opened. Allow for that on a busy sandbox machine.
                "health_method": "GET",
                "health_path": "/healthz",
                "health_timeout_s": DEMO_HEALTH_TIMEOUT_S,
            },
        )
        if was_created:
            ReleaseMigration.objects.bulk_create(
                ReleaseMigration(
                    release=release,
                    version=m.version,
                    name=m.name,
                    sql=m.sql,
                    sha256=ReleaseMigration.checksum(m.sql),
                )
                for m in demo.migrations
            )
            created.append(f"release {release.version}")
            return release
    if release.zip_key != demo.zip_key or release.zip_bucket != bucket:
        # Registered by an older build whose demo bytes differed: its zip is not in this
        # fresh local AWS. Releases are immutable, so say so instead of rewriting it.
        warnings.append(
            f"Release {release.version} points at s3://{release.zip_bucket}/{release.zip_key}, "
            "which this build does not produce; deploying it will fail in the sandbox "
            "(`make clean` starts the sandbox afresh)."
        )
        logger.warning(warnings[-1])
    recorded = sorted(release.migrations.values_list("name", "sha256"))
    if recorded != sorted((m.name, m.sha256) for m in demo.migrations):
        warnings.append(
            f"Release {release.version} was registered with other migrations than this "
            f"build's ({', '.join(m.name for m in demo.migrations)})."
        )
        logger.warning(warnings[-1])
    return release

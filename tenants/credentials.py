"""The tenant's database password: rotated by the console, and a change made outside it
(a rotation Lambda, someone at the CLI) applied to the function.

Rotation is the ``tenant_rotate_password`` job, staged as Secrets Manager's own rotations
are, so a failure part way never leaves readers with a password the database does not
know:

1. ``stage``: a new password in a new version labelled AWSPENDING (readers still get
   AWSCURRENT). The version is named after the job, so a retried step finds it instead of
   making another.
2. ``database``: the database takes the pending password (shared: ALTER ROLE; dedicated
   or Aurora: the master password through RDS).
3. ``promote``: the pending version becomes AWSCURRENT (the old one AWSPREVIOUS).
4. ``function``: the function's variables again, for a release that puts the password
   (or a DSN holding it) in the environment.
5. ``verify``: the release's health route through ``live``.

Between steps 2 and 3 (one Secrets Manager call) a new connection made with the old
password fails; open connections keep working. That is the window of AWS's single-user
rotation too.

The console records which secret version each tenant runs with (``version_id`` on the
``db_secret`` and ``env_secret`` records). ``secrets_watch`` (beat, every
``SECRET_WATCH_SECONDS``) lists the tenants' secrets, 100 per call, in each account and
region, and queues a reconcile
for a tenant whose secret has a current version the console did not make: the reconcile
gives the database the secret's password and rebuilds the function's variables.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from typing import Any

from django.db import transaction

from opsconsole.aws import rds, secrets
from opsconsole.aws.clients import aws_account
from opsconsole.jobs.models import Job, JobStep
from opsconsole.jobs.registry import register_job_kind
from opsconsole.jobs.services import job_create
from tenants import naming, resources
from tenants.models import Isolation, Tenant, TenantResource, TenantStatus
from tenants.provisioning.common import tenant_of
from tenants.provisioning.database_common import ensure_login_role
from tenants.provisioning.database_rds import apply_master_password, wait_unless_available
from tenants.provisioning.database_secret import new_password, read_db_secret, record_secret
from tenants.provisioning.database_shared import master_connection, master_secret
from tenants.provisioning.function import step_function
from tenants.provisioning.release import step_verify

logger = logging.getLogger(__name__)

ROTATE_KIND = "tenant_rotate_password"
WATCHED_KINDS = ("db_secret", "env_secret")
_TOKENS = uuid.UUID("6f1c0b8e-3d2a-4c55-9a0e-0b5d7c2e9f41")


class RotationRefused(ValueError):  # noqa: N818 - shown to the person
    pass


def rotation_token(job: Job) -> str:
    """The pending version's id: one per rotation job (Secrets Manager wants 32..64)."""
    return str(uuid.uuid5(_TOKENS, f"rotate:{job.pk}"))


def rotation_refusal(tenant: Tenant) -> str:
    """Why this tenant's password cannot be rotated now ('' when it can)."""
    if tenant.isolation == Isolation.NONE:
        return f"{tenant.slug} brings its own database: the console keeps no password of it."
    if tenant.status not in (TenantStatus.ACTIVE, TenantStatus.SUSPENDED):
        return (
            f"{tenant.slug} is {tenant.get_status_display().lower()}: a rotation needs it "
            "active or suspended."
        )
    return ""


def rotate_password(tenant: Tenant, *, created_by=None) -> Job:
    """Queue the rotation job (one per tenant at a time: a second request gets the first)."""
    refusal = rotation_refusal(tenant)
    if refusal:
        raise RotationRefused(refusal)
    return job_create(
        kind=ROTATE_KIND, subject_type="tenant", subject_id=tenant.slug, created_by=created_by
    )


# --- the job's steps --------------------------------------------------------------------


def step_stage(job: Job, step: JobStep) -> dict[str, Any]:
    tenant = tenant_of(job)
    name, token = naming.db_secret_name(tenant.slug), rotation_token(job)
    if secrets.read_version_json(secret_id=name, version_id=token, region=tenant.region):
        return {"pending_version": token, "staged": "already (a retried step)"}
    current = read_db_secret(tenant)
    if current is None or not current["value"].get("password"):
        raise RuntimeError(
            f"Secret {name} is missing or holds no password: repair {tenant.slug} first."
        )
    value = {**current["value"], "password": new_password()}
    secrets.stage_pending_json(secret_id=name, value=value, token=token, region=tenant.region)
    return {"pending_version": token, "previous_version": current["VersionId"]}


def _pending(job: Job, tenant: Tenant) -> dict:
    name = naming.db_secret_name(tenant.slug)
    value = secrets.read_version_json(
        secret_id=name, version_id=rotation_token(job), region=tenant.region
    )
    if not value or not value.get("password"):
        raise RuntimeError(f"The staged version of {name} is gone: start the rotation again.")
    return value


def step_database(job: Job, step: JobStep) -> dict[str, Any]:
    tenant = tenant_of(job)
    password = _pending(job, tenant)["password"]
    arn = read_db_secret(tenant)["ARN"]
    if tenant.isolation == Isolation.SHARED:
        with master_connection(master_secret(tenant.region)) as conn:
            ensure_login_role(conn, role=naming.db_user(tenant.slug), password=password)
        return {"database": f"role {naming.db_user(tenant.slug)} has the new password"}
    if tenant.isolation == Isolation.DEDICATED:
        kind, identifier = "db_instance", naming.db_instance_id(tenant.slug)
        resource = rds.describe_db_instance(identifier=identifier, region=tenant.region)
        status_key = "DBInstanceStatus"
    else:
        kind, identifier = "db_cluster", naming.db_cluster_id(tenant.slug)
        resource = rds.describe_db_cluster(identifier=identifier, region=tenant.region)
        status_key = "Status"
    if resource is None:
        raise RuntimeError(f"{identifier} was not found in AWS: repair {tenant.slug} first.")
    wait_unless_available(resource.get(status_key, ""))
    _, changed = apply_master_password(
        tenant, kind=kind, resource=resource, arn=arn, password=password
    )
    return {"database": f"{identifier}: master password {'set' if changed else 'already set'}"}


def step_promote(job: Job, step: JobStep) -> dict[str, Any]:
    tenant = tenant_of(job)
    name, token = naming.db_secret_name(tenant.slug), rotation_token(job)
    value = _pending(job, tenant)
    moved = secrets.promote_version(secret_id=name, version_id=token, region=tenant.region)
    record_secret(tenant, arn=read_db_secret(tenant)["ARN"], value=value, version_id=token)
    return {"current_version": token, "promoted": "now" if moved else "already"}


register_job_kind(
    ROTATE_KIND,
    label="Rotate database password",
    steps=[
        ("stage", "A new password staged (AWSPENDING)", step_stage),
        ("database", "The database takes the new password", step_database),
        ("promote", "The new password becomes current", step_promote),
        ("function", "Function variables rebuilt from the secret", step_function),
        ("verify", "Verify: the release's health route", step_verify),
    ],
)


# --- a change made outside the console ---------------------------------------------------


def secrets_watch() -> list[str]:
    """Queue a reconcile for each live tenant whose secret has a current version the
    console did not record. Returns their slugs. One ListSecrets call per 100 secrets per
    region; a record without a version (made before versions were recorded) takes the
    current one without a reconcile."""
    records = list(
        TenantResource.objects.filter(
            kind__in=WATCHED_KINDS,
            tenant__status__in=[TenantStatus.ACTIVE, TenantStatus.SUSPENDED],
        ).select_related("tenant", "tenant__aws_account")
    )
    # Secrets live in the tenant's own account and region: one listing for each.
    by_place: dict[tuple[int, str], list[TenantResource]] = defaultdict(list)
    for record in records:
        by_place[(record.tenant.aws_account_id or 0, record.tenant.region)].append(record)
    changed: dict[str, Tenant] = {}
    for (_, region), region_records in sorted(by_place.items()):
        with aws_account(region_records[0].tenant.aws_account):
            current = secrets.current_versions(
                name_prefix=f"{naming.PREFIX}/tenants/", region=region
            )
        for record in region_records:
            now = current.get(record.name, "")
            recorded = (record.details or {}).get("version_id", "")
            if not now or now == recorded:
                continue
            if not recorded:
                resources.record(
                    record.tenant,
                    kind=record.kind,
                    name=record.name,
                    identifier=record.identifier,
                    arn=record.arn,
                    details={**record.details, "version_id": now},
                )
                continue
            logger.info(
                "Secret %s of tenant %s changed outside the console (version %s, applied %s)",
                record.name,
                record.tenant.slug,
                now,
                recorded,
            )
            changed[record.tenant.slug] = record.tenant
    for slug, tenant in sorted(changed.items()):
        with transaction.atomic():
            job_create(
                kind="tenant_reconcile",
                subject_type="tenant",
                subject_id=slug,
                params={
                    "generation": tenant.config_generation,
                    "reason": "a secret changed outside the console",
                },
            )
    return sorted(changed)

"""The tenant's DB secret (``naming.db_secret_name``): the source of truth for its password.

The password is generated here and written to the secret *before* anything uses it; the
database steps then give it to PostgreSQL (shared: ``CREATE/ALTER ROLE``) or to RDS
(dedicated, serverless: the master password). A crash between the two is repaired by the
next run: the secret is read back and the database is told again. The console's database
never holds the password, only the secret's ARN and public fields.
"""

from __future__ import annotations

import logging
import secrets as pysecrets
from typing import Any

from django.conf import settings

from opsconsole.aws import secrets
from opsconsole.aws.errors import AwsError
from opsconsole.jobs.models import Job, JobStep
from tenants import naming, resources
from tenants.models import ResourceStatus, Tenant, TenantResource
from tenants.provisioning.common import Drift, tags_for, tenant_of
from tenants.provisioning.database_common import POSTGRES_ENGINE, compare, mark_deleted

logger = logging.getLogger(__name__)

# 24 random bytes = 32 URL-safe characters: inside Aurora's 8..41 and RDS's 8..128, and
# free of the characters RDS refuses (/ " @ and space).
PASSWORD_BYTES = 24


def new_password() -> str:
    return pysecrets.token_urlsafe(PASSWORD_BYTES)


def read_db_secret(tenant: Tenant) -> dict | None:
    """The tenant's DB secret with its ARN; a secret scheduled for deletion is restored
    first (an earlier offboarding attempt, or a re-onboarded slug)."""
    name = naming.db_secret_name(tenant.slug)
    try:
        return secrets.read_secret_json(secret_id=name, region=tenant.region)
    except AwsError as exc:
        if exc.code != "InvalidRequestException":
            raise
        described = secrets.describe_secret(secret_id=name, region=tenant.region)
        if not (described and described.get("DeletedDate")):
            raise
    logger.info("Restoring secret %s of tenant %s (it was scheduled for deletion)", name, tenant)
    secrets.restore_secret(secret_id=name, region=tenant.region)
    return secrets.read_secret_json(secret_id=name, region=tenant.region)


def _public_fields(value: dict) -> dict:
    """What may be recorded in the console: everything but the password (and whether the
    secret holds one)."""
    fields = {k: v for k, v in value.items() if k != "password"}
    fields["secret_complete"] = bool(value.get("password"))
    return fields


def record_secret(tenant: Tenant, *, arn: str, value: dict, version_id: str = "") -> TenantResource:
    """``version_id``: the version the tenant now runs with (tenants.credentials notices a
    new one made outside the console and applies it)."""
    name = naming.db_secret_name(tenant.slug)
    details = _public_fields(value)
    if version_id:
        details["version_id"] = version_id
    return resources.record(
        tenant, kind="db_secret", name=name, identifier=name, arn=arn, details=details
    )


def ensure_db_secret(tenant: Tenant, *, known: dict | None = None) -> tuple[str, dict, bool]:
    """Secret first: the tenant's DB secret exists and holds a password.

    Returns ``(arn, value, generated)``; ``generated`` is True when this call made the
    password (the database has not been told it yet). ``known`` adds fields (host, port)
    to a secret that is created now; existing secrets are completed by ``step_secret``.
    """
    slug = tenant.slug
    name = naming.db_secret_name(slug)
    # Never recorded: most likely new, so go straight to creating it (a secret left by a
    # crash answers ResourceExistsException and is adopted below). Saves a read.
    never_recorded = resources.find(tenant, kind="db_secret") is None
    current = None if never_recorded else read_db_secret(tenant)
    if current is None:
        value = {
            "engine": POSTGRES_ENGINE,
            **(known or {}),
            "dbname": naming.db_name(slug),
            "username": naming.db_user(slug),
            "password": new_password(),
        }
        try:
            created = secrets.create_secret_json(
                name=name,
                value=value,
                description=f"PostgreSQL credentials of tenant {slug} (opsconsole)",
                tags=tags_for(tenant),
                region=tenant.region,
            )
        except AwsError as exc:
            # A retried request whose first attempt did create it: adopt that one.
            if exc.code != "ResourceExistsException":
                raise
            current = read_db_secret(tenant)
            if current is None:
                raise
        else:
            logger.info("Created secret %s for tenant %s", name, slug)
            record_secret(tenant, arn=created["ARN"], value=value, version_id=created["VersionId"])
            return created["ARN"], value, True
    value = current["value"]
    if not value.get("password"):
        value = {**value, "password": new_password()}
        secrets.put_secret_json(secret_id=name, value=value, region=tenant.region)
        logger.info("Secret %s of tenant %s had no password: generated one", name, slug)
        return current["ARN"], value, True
    return current["ARN"], value, False


def expected_secret_fields(tenant: Tenant, endpoint: tuple[str, int]) -> dict[str, Any]:
    """The secret's fields besides the password, for a client connecting at ``endpoint``."""
    return {
        "engine": POSTGRES_ENGINE,
        "host": endpoint[0],
        "port": endpoint[1],
        "dbname": naming.db_name(tenant.slug),
        "username": naming.db_user(tenant.slug),
    }


def secret_drift(tenant: Tenant, endpoint: tuple[str, int] | None) -> list[Drift]:
    """Compare the secret's public fields; the password is only checked to be there."""
    name = naming.db_secret_name(tenant.slug)
    described = secrets.describe_secret(secret_id=name, region=tenant.region)
    if described is None:
        return [Drift("db_secret", name, "exists", True, False)]
    if described.get("DeletedDate"):
        return [Drift("db_secret", name, "scheduled_for_deletion", False, True)]
    value = secrets.get_secret_json(secret_id=name, region=tenant.region)
    expected = expected_secret_fields(tenant, endpoint or ("", 0))
    if endpoint is None:  # where it should point is unknown: the database drift says why
        expected.pop("host")
        expected.pop("port")
    drifts = compare("db_secret", name, [(k, v, value.get(k)) for k, v in expected.items()])
    if not value.get("password"):
        drifts.append(Drift("db_secret", name, "password", "set", "missing"))
    return drifts


def step_delete_secret(job: Job, step: JobStep) -> dict[str, Any]:
    """Offboarding: schedule deletion of the DB secret and the env secret, restorable for
    ``TENANT_SECRET_RECOVERY_DAYS``."""
    tenant = tenant_of(job)
    days = int(getattr(settings, "TENANT_SECRET_RECOVERY_DAYS", 7))
    scheduled = []
    for kind, name in (
        ("db_secret", naming.db_secret_name(tenant.slug)),
        ("env_secret", naming.env_secret_name(tenant.slug)),
    ):
        described = secrets.describe_secret(secret_id=name, region=tenant.region)
        if described is None:
            mark_deleted(tenant, kind=kind, name=name)
            continue
        deletion = described.get("DeletedDate")
        when = deletion.isoformat() if hasattr(deletion, "isoformat") else ""
        if not deletion:
            when = (
                secrets.delete_secret(
                    secret_id=name, recovery_window_days=days, region=tenant.region
                )
                or ""
            )
            logger.info("Scheduled secret %s for deletion in %s days", name, days)
        record = resources.find(tenant, kind=kind, name=name)
        details = {**((record.details or {}) if record else {}), "deletion_date": when}
        resources.record(
            tenant,
            kind=kind,
            name=name,
            identifier=name,
            arn=described.get("ARN", ""),
            details=details,
            status=ResourceStatus.DELETED,
        )
        scheduled.append({"name": name, "deletion_date": when})
    return {"scheduled": scheduled, "recovery_days": days}

"""Bring a customer's data: a ``pg_dump`` restored into its database, as a job.

The dump comes uploaded (stored first in the artifacts bucket under ``restores/<slug>/``,
never in the console's database) or from an ``s3://`` URI in the tenant's account. The
``tenant_restore`` job checks it can (the dump's format from its first bytes, the
database reachable as the tenant's own role, psql and pg_restore new enough), then a
worker downloads it and restores it (``provisioning.database_restore``), reporting
progress in the step's detail and stopping at the first error with PostgreSQL's words.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from opsconsole.aws import s3
from opsconsole.aws.errors import AwsError
from opsconsole.aws.secrets import get_secret_json
from opsconsole.jobs.models import FINISHED, Job, JobStep
from opsconsole.jobs.registry import register_job_kind
from opsconsole.jobs.services import job_create
from tenants import resources
from tenants.models import Isolation, Tenant, TenantStatus
from tenants.provisioning import database_restore as dr
from tenants.provisioning.common import tenant_of

RESTORE_KIND = "tenant_restore"
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$")
SNIFF_BYTES = 512


class RestoreRefused(ValueError):  # noqa: N818 - shown to the person
    pass


def restore_start(
    tenant: Tenant,
    *,
    mode: str,
    upload: UploadedFile | None = None,
    s3_uri: str = "",
    created_by=None,
) -> Job:
    """Validate, store an upload in S3, and record the job (sent once committed)."""
    if tenant.isolation == Isolation.NONE:
        raise RestoreRefused(
            f"{tenant.slug} brings its own database: there is none to restore into."
        )
    if tenant.status not in (TenantStatus.ACTIVE, TenantStatus.SUSPENDED):
        raise RestoreRefused(f"{tenant.slug} is {tenant.status}: restore once it is active.")
    if mode not in dr.MODES:
        raise RestoreRefused(f"Unknown mode {mode!r}: {', '.join(dr.MODES)}.")
    if bool(upload) == bool(s3_uri.strip()):
        raise RestoreRefused("Give either a dump file or an s3:// URI, not both.")
    busy = Job.objects.filter(
        kind=RESTORE_KIND, subject_type="tenant", subject_id=tenant.slug
    ).exclude(status__in=FINISHED)
    if busy.exists():
        raise RestoreRefused(f"A restore of {tenant.slug} is already running (job #{busy[0].pk}).")
    if upload is not None:
        bucket, key, fmt = _store_upload(tenant, upload)
        source = f"upload {upload.name}"
    else:
        bucket, key = _parse_uri(s3_uri.strip())
        fmt = _sniff_s3(bucket, key, region=tenant.region)
        source = s3_uri.strip()
    return job_create(
        kind=RESTORE_KIND,
        subject_type="tenant",
        subject_id=tenant.slug,
        params={"bucket": bucket, "key": key, "format": fmt, "mode": mode, "source": source},
        created_by=created_by,
    )


def _parse_uri(uri: str) -> tuple[str, str]:
    match = _S3_URI.match(uri)
    if not match:
        raise RestoreRefused(f"{uri!r} is not an s3://bucket/key URI.")
    return match["bucket"], match["key"]


def _sniff_s3(bucket: str, key: str, *, region: str) -> str:
    try:
        head = s3.read_range(bucket=bucket, key=key, length=SNIFF_BYTES, region=region)
    except AwsError as exc:
        raise RestoreRefused(f"Cannot read s3://{bucket}/{key}: {exc}") from exc
    try:
        return dr.sniff_format(head)
    except dr.RestoreError as exc:
        raise RestoreRefused(str(exc)) from exc


def _store_upload(tenant: Tenant, upload: UploadedFile) -> tuple[str, str, str]:
    limit = settings.RESTORE_MAX_UPLOAD_BYTES
    if upload.size and upload.size > limit:
        raise RestoreRefused(
            f"{upload.name} is {upload.size:,} bytes; uploads stop at {limit:,}: put it in S3 "
            "and give its s3:// URI."
        )
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    try:
        fmt = dr.sniff_format(head)
    except dr.RestoreError as exc:
        raise RestoreRefused(f"{upload.name}: {exc}") from exc
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    bucket = settings.BASELINE["artifact_bucket"]
    key = f"restores/{tenant.slug}/{uuid.uuid4().hex}.{'dump' if fmt == dr.CUSTOM else 'sql'}"
    try:
        s3.upload_fileobj(
            bucket=bucket,
            key=key,
            fileobj=upload,  # type: ignore[arg-type]
            metadata={
                "tenant": tenant.slug,
                "sha256": digest.hexdigest(),
                "name": upload.name[:200],
            },
        )
    except AwsError as exc:
        raise RestoreRefused(f"Could not store the dump in s3://{bucket}: {exc}") from exc
    return bucket, key, fmt


# --- the job ------------------------------------------------------------------------------


def _connection(tenant: Tenant) -> dr.Connection:
    """The tenant's own role, from its database secret (never the master's)."""
    record = resources.find(tenant, kind="db_secret")
    if record is None or not record.arn:
        raise RuntimeError(f"{tenant.slug}'s database secret is not recorded: repair it first.")
    secret = get_secret_json(secret_id=record.arn, region=tenant.region)
    return dr.Connection(
        host=str(secret["host"]),
        port=int(secret.get("port") or 5432),
        dbname=str(secret["dbname"]),
        user=str(secret["username"]),
        password=str(secret.get("password") or ""),
    )


def step_check(job: Job, step: JobStep) -> dict[str, Any]:
    tenant = tenant_of(job)
    params = job.params
    head = s3.head_object(bucket=params["bucket"], key=params["key"], region=tenant.region)
    if head is None:
        raise RuntimeError(f"s3://{params['bucket']}/{params['key']} is gone.")
    conn = _connection(tenant)
    major = dr.server_major(conn)
    psql = dr.find_pg_tool("psql", major)
    pg_restore = dr.find_pg_tool("pg_restore", major)
    return {
        "size_bytes": head.get("ContentLength", 0),
        "format": params["format"],
        "database": conn.dbname,
        "role": conn.user,
        "server": f"PostgreSQL {major}",
        "tools": [psql, pg_restore],
    }


def step_restore(job: Job, step: JobStep) -> dict[str, Any]:
    tenant = tenant_of(job)
    params = job.params
    conn = _connection(tenant)
    if dr.already_restored(conn, job.pk):
        return {"restored": "already, by this job (its row is in opsconsole_restores)"}

    def progress(text: str) -> None:
        step.detail = text[:255]
        step.save(update_fields=["detail"])

    with tempfile.TemporaryDirectory(prefix="opsconsole-restore-") as work:
        path = Path(work) / "dump"
        progress("downloading the dump")
        with open(path, "wb") as fh:
            s3.download_fileobj(
                bucket=params["bucket"], key=params["key"], fileobj=fh, region=tenant.region
            )
        sha256 = dr.sha256_of(path)
        done = dr.restore(
            path=path,
            fmt=params["format"],
            mode=params["mode"],
            conn=conn,
            job_id=job.pk,
            sha256=sha256,
            on_progress=progress,
        )
    return {**done, "sha256": sha256, "database": conn.dbname, "mode": params["mode"]}


register_job_kind(
    RESTORE_KIND,
    label="Restore data",
    steps=[
        (
            "check",
            "Dump readable, database reachable as the tenant's role, tools found",
            step_check,
        ),
        ("restore", "Restore the dump (one transaction; stops at the first error)", step_restore),
    ],
)

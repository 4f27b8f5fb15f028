"""Offboarding's final backup, taken before any data goes: a final RDS snapshot of a
dedicated instance or Aurora cluster, or a gzip'd ``pg_dump`` in the artifacts bucket for a
shared-instance tenant. Each is recorded with the offboarding job that took (or adopted)
it; ``verified_backup`` is what the delete step checks first.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC
from typing import Any

from django.conf import settings

from opsconsole.aws import rds, s3
from opsconsole.aws.clients import tag_dict
from opsconsole.aws.errors import AwsError
from opsconsole.jobs.models import Job, JobStep
from opsconsole.jobs.registry import StepWait
from tenants import naming, resources
from tenants.models import Isolation, ResourceStatus, Tenant, TenantResource
from tenants.provisioning.common import tags_for, tenant_of
from tenants.provisioning.database_common import database_state
from tenants.provisioning.database_dump import dump_database, find_pg_dump
from tenants.provisioning.database_rds import RDS_RETRY_S, wait_unless_available
from tenants.provisioning.database_shared import master_connection, master_endpoint, master_secret

logger = logging.getLogger(__name__)


def final_snapshot_id(slug: str, stamp: str, *, cluster: bool) -> str:
    """``opsconsole-<slug>-final-<yyyymmddhhmm>``.

    DB cluster snapshot identifiers are limited to 63 characters; for long slugs the
    ``opsconsole-`` prefix is dropped there (adoption also goes by the OffboardJob tag).
    """
    name = f"{naming.resource_prefix(slug)}-final-{stamp}"
    if cluster and len(name) > 63:
        name = f"{slug}-final-{stamp}"
    return name


def _stamp(job: Job, fmt: str) -> str:
    return job.created_at.astimezone(UTC).strftime(fmt)


def _snapshot_fields(snapshot: dict, *, cluster: bool) -> dict[str, Any]:
    if cluster:
        return {
            "id": snapshot["DBClusterSnapshotIdentifier"],
            "arn": snapshot.get("DBClusterSnapshotArn", ""),
            "source": snapshot.get("DBClusterIdentifier", ""),
        }
    return {
        "id": snapshot["DBSnapshotIdentifier"],
        "arn": snapshot.get("DBSnapshotArn", ""),
        "source": snapshot.get("DBInstanceIdentifier", ""),
    }


def _record_backup(
    tenant: Tenant, *, kind: str, name: str, arn: str, details: dict, job: Job
) -> TenantResource:
    existing = resources.find(tenant, kind=kind, name=name)
    previous = (existing.details or {}) if existing else {}
    details = {**details, "job_id": previous.get("job_id", job.pk)}
    adopted = list(previous.get("adopted_by_jobs", []))
    if details["job_id"] != job.pk and job.pk not in adopted:
        adopted.append(job.pk)
    if adopted:
        details["adopted_by_jobs"] = adopted
    return resources.record(tenant, kind=kind, name=name, identifier=name, arn=arn, details=details)


def _final_snapshot(tenant: Tenant, job: Job, *, cluster: bool) -> dict[str, Any]:
    slug, region = tenant.slug, tenant.region
    source = naming.db_cluster_id(slug) if cluster else naming.db_instance_id(slug)
    expected = final_snapshot_id(slug, _stamp(job, "%Y%m%d%H%M"), cluster=cluster)
    listed = (
        rds.list_db_cluster_snapshots(cluster_identifier=source, region=region)
        if cluster
        else rds.list_db_snapshots(instance_identifier=source, region=region)
    )
    finals = [
        s
        for s in listed
        if _snapshot_fields(s, cluster=cluster)["id"] == expected
        or (
            tag_dict(s.get("TagList")).get("Purpose") == "final"
            and tag_dict(s.get("TagList")).get("Tenant") == slug
        )
    ]
    snapshot = next(
        (
            s
            for s in finals
            if _snapshot_fields(s, cluster=cluster)["id"] == expected
            or tag_dict(s.get("TagList")).get("OffboardJob") == str(job.pk)
        ),
        None,
    )
    if snapshot is None:
        exists = (
            rds.describe_db_cluster(identifier=source, region=region)
            if cluster
            else rds.describe_db_instance(identifier=source, region=region)
        )
        if exists is None:
            # Gone already: its last final snapshot is its last state.
            if not finals:
                raise RuntimeError(
                    f"{'Cluster' if cluster else 'Instance'} {source} does not exist and has no "
                    "final snapshot: nothing to back up. Check the AWS account by hand."
                )
            snapshot = max(finals, key=lambda s: str(s.get("SnapshotCreateTime", "")))
        else:
            tags = {**tags_for(tenant), "Purpose": "final", "OffboardJob": str(job.pk)}
            try:
                snapshot = (
                    rds.create_db_cluster_snapshot(
                        identifier=expected, cluster_identifier=source, tags=tags, region=region
                    )
                    if cluster
                    else rds.create_db_snapshot(
                        identifier=expected, instance_identifier=source, tags=tags, region=region
                    )
                )
            except AwsError as exc:
                if not exc.permanent:  # e.g. the instance is busy (backing-up, modifying)
                    raise StepWait(f"waiting for RDS ({exc.code})", retry_in=RDS_RETRY_S) from exc
                if "AlreadyExists" not in exc.code:
                    raise
                # Made by an earlier attempt that the listing did not show yet: adopt it.
                snapshot = (
                    rds.describe_db_cluster_snapshot(identifier=expected, region=region)
                    if cluster
                    else rds.describe_db_snapshot(identifier=expected, region=region)
                )
                if snapshot is None:
                    raise
            else:
                logger.info("Taking final snapshot %s of %s", expected, source)
    fields = _snapshot_fields(snapshot, cluster=cluster)
    status = snapshot.get("Status", "")
    created_at = snapshot.get("SnapshotCreateTime")
    details = {
        "status": status,
        "source": fields["source"],
        "cluster": cluster,
        "size_gb": snapshot.get("AllocatedStorage"),
        "engine": snapshot.get("Engine", ""),
        "created_at": created_at.isoformat() if hasattr(created_at, "isoformat") else "",
    }
    _record_backup(
        tenant, kind="snapshot", name=fields["id"], arn=fields["arn"], details=details, job=job
    )
    wait_unless_available(status, f"snapshot {fields['id']}")
    return {
        "backup": "snapshot",
        "snapshot_id": fields["id"],
        "arn": fields["arn"],
        "status": status,
        "size_gb": details["size_gb"],
    }


def _final_dump(tenant: Tenant, job: Job) -> dict[str, Any]:
    slug = tenant.slug
    bucket = settings.BASELINE["artifact_bucket"]
    key = f"dumps/{slug}/{_stamp(job, '%Y%m%d%H%M%S')}.sql.gz"
    dbname = naming.db_name(slug)
    head = s3.head_object(bucket=bucket, key=key)
    if head is not None:  # a PUT is atomic: an object under this key is a whole dump
        meta = head.get("Metadata") or {}
        details = {
            "bucket": bucket,
            "key": key,
            "uri": f"s3://{bucket}/{key}",
            "database": dbname,
            "size_bytes": head.get("ContentLength", 0),
            "sha256": meta.get("sha256", ""),
        }
        _record_backup(tenant, kind="dump", name=key, arn="", details=details, job=job)
        return {"backup": "dump", **details}

    master = master_secret(tenant.region)
    host, port = master_endpoint(master)
    with master_connection(master) as conn:
        server_major = conn.info.server_version // 10000
        state = database_state(conn, dbname=dbname, role=naming.db_user(slug))
    if not state["database"]:
        earlier = _latest_backup(tenant, kind="dump")
        if earlier is None:
            raise RuntimeError(
                f"Database {dbname} does not exist on {settings.BASELINE['shared_db_instance']} "
                f"and no earlier dump of {slug} is recorded: nothing to back up."
            )
        _record_backup(
            tenant, kind="dump", name=earlier.name, arn="", details=earlier.details, job=job
        )
        return {"backup": "dump", **{k: v for k, v in earlier.details.items() if k != "job_id"}}

    pg_dump = find_pg_dump(server_major)
    with tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024) as buffer:
        dumped = dump_database(
            pg_dump=pg_dump,
            host=host,
            port=port,
            user=master["username"],
            password=master.get("password"),
            dbname=dbname,
            out=buffer,
        )
        buffer.seek(0)
        uploaded = s3.upload_fileobj(
            bucket=bucket,
            key=key,
            fileobj=buffer,  # type: ignore[arg-type]
            content_type="application/gzip",
            metadata={
                "tenant": slug,
                "database": dbname,
                "sha256": dumped["sha256"],
                "job": str(job.pk),
            },
        )
    logger.info("Dumped %s to s3://%s/%s (%s bytes)", dbname, bucket, key, dumped["size_bytes"])
    details = {
        "bucket": bucket,
        "key": key,
        "uri": f"s3://{bucket}/{key}",
        "database": dbname,
        "size_bytes": uploaded["ContentLength"] or dumped["size_bytes"],
        "uncompressed_bytes": dumped["uncompressed_bytes"],
        "sha256": dumped["sha256"],
    }
    _record_backup(tenant, kind="dump", name=key, arn="", details=details, job=job)
    return {"backup": "dump", **details}


def step_final_backup(job: Job, step: JobStep) -> dict[str, Any]:
    """Offboarding: a final snapshot (dedicated, serverless) or a gzip'd SQL dump in the
    artifacts bucket (shared), recorded before any data goes."""
    tenant = tenant_of(job)
    if tenant.isolation == Isolation.SHARED:
        return _final_dump(tenant, job)
    return _final_snapshot(tenant, job, cluster=tenant.isolation == Isolation.SERVERLESS)


def _latest_backup(tenant: Tenant, *, kind: str) -> TenantResource | None:
    return (
        TenantResource.objects.filter(tenant=tenant, kind=kind, status=ResourceStatus.PRESENT)
        .order_by("-created_at", "-id")
        .first()
    )


def verified_backup(tenant: Tenant, job: Job) -> TenantResource:
    """The backup taken (or adopted) by this offboarding, checked to exist in AWS."""
    kind = "dump" if tenant.isolation == Isolation.SHARED else "snapshot"
    backup = None
    for candidate in TenantResource.objects.filter(
        tenant=tenant, kind=kind, status=ResourceStatus.PRESENT
    ).order_by("-id"):
        details = candidate.details or {}
        if details.get("job_id") == job.pk or job.pk in details.get("adopted_by_jobs", []):
            backup = candidate
            break
    if backup is None:
        raise RuntimeError(
            f"Refusing to delete the database of {tenant.slug}: this offboarding (job "
            f"#{job.pk}) has no final {kind} recorded. Data is never dropped without one."
        )
    details = backup.details or {}
    if kind == "dump":
        head = s3.head_object(bucket=details.get("bucket", ""), key=backup.name)
        ok = bool(head and head.get("ContentLength"))
    else:
        found = (
            rds.describe_db_cluster_snapshot(identifier=backup.name, region=tenant.region)
            if details.get("cluster")
            else rds.describe_db_snapshot(identifier=backup.name, region=tenant.region)
        )
        ok = bool(found and found.get("Status") == "available")
    if not ok:
        raise RuntimeError(
            f"Refusing to delete the database of {tenant.slug}: its final {kind} "
            f"{backup.name} is not available in AWS."
        )
    return backup

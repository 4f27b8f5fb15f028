"""The deployments side of tenants.release_source: releases as tenants need them.

Registered in DeploymentsConfig.ready(), so the tenants app can put a release on a new
tenant without importing this app.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from typing import Any

from django.conf import settings

from deployments.migration_files import MigrationSpec
from deployments.migration_runner import (
    DatabaseTarget,
    FailureKind,
    MigrateResult,
    ServerSlots,
    migrate_database,
)
from deployments.models import ArtifactType, Release, SchemaStatus, TenantSchema
from opsconsole.jobs.registry import StepWait
from tenants import naming, resources
from tenants.app_settings import parse_app_settings
from tenants.models import Isolation, Tenant
from tenants.release_source import HealthCheck, ReleaseArtifact


def release_specs(release: Release) -> list[MigrationSpec]:
    return [
        MigrationSpec.from_text(version=m.version, name=m.name, sql=m.sql)
        for m in release.migrations.all()
    ]


def server_key(tenant: Tenant) -> str:
    """The database server a tenant's migrations run on (shares its migration slots)."""
    if tenant.isolation == Isolation.DEDICATED:
        return naming.db_instance_id(tenant.slug)
    if tenant.isolation == Isolation.SERVERLESS:
        return naming.db_cluster_id(tenant.slug)
    return settings.BASELINE["shared_db_instance"]


def database_target(tenant: Tenant) -> DatabaseTarget:
    secret = resources.find(tenant, kind="db_secret")
    if secret is None or not secret.arn:
        raise RuntimeError("The tenant's database secret is not recorded yet.")
    proxy = resources.find(tenant, kind="db_proxy")
    proxy_host, proxy_port = "", 5432
    if tenant.use_rds_proxy and proxy is not None and proxy.status == "present":
        # The record keeps the endpoint's host and port apart; "endpoint" is the
        # host:port text people read, which is no host name to connect to.
        proxy_host = proxy.details.get("host", "")
        proxy_port = int(proxy.details.get("port") or 5432)
    return DatabaseTarget(
        server_key=server_key(tenant),
        secret_id=secret.arn,
        region=tenant.region,
        proxy_host=proxy_host,
        proxy_port=proxy_port,
    )


def record_schema(tenant: Tenant, release: str, result: MigrateResult) -> TenantSchema:
    """Keep the run's outcome for the fleet page (a slot wait changes nothing)."""
    existing = TenantSchema.objects.filter(tenant=tenant).first()
    if result.error is not None and result.error.kind == FailureKind.SLOT and existing:
        return existing
    failed = result.error is not None
    schema, _ = TenantSchema.objects.update_or_create(
        tenant=tenant,
        defaults={
            "version": result.current_version
            if result.current_version is not None
            else (existing.version if existing else None),
            "release": release,
            "status": SchemaStatus.FAILED if failed else SchemaStatus.OK,
            "failed_migration": result.error.migration if failed else "",
            "error": str(result.error) if failed else "",
            "applied_last_run": [m.name for m in result.applied],
        },
    )
    return schema


def located(artifact: ReleaseArtifact, release: Release, *, region: str) -> ReleaseArtifact:
    """The artifact as a function in ``region`` of the current AWS account reads it: the
    zip from that region's (and account's) bucket, the image from its registry
    (``artifacts.ensure_artifact_in_region`` puts them there)."""
    from deployments.artifacts import image_uri_for, zip_bucket_for

    if artifact.package_type == "Image":
        return dataclasses.replace(artifact, image_uri=image_uri_for(artifact.image_uri, region))
    return dataclasses.replace(artifact, s3_bucket=zip_bucket_for(release, region))


def release_artifact(release: Release) -> ReleaseArtifact:
    """What Lambda needs of a release (in the console's home region)."""
    common: dict[str, Any] = {
        "version": release.version,
        "architecture": release.architecture,
        "memory_mb": release.memory_mb,
        "timeout_s": release.timeout_s,
        "health": HealthCheck(
            method=release.health_method,
            path=release.health_path,
            statuses=release.health_statuses,
            timeout_s=release.health_timeout_s,
        ),
        "app_settings": parse_app_settings(release.app_settings),
    }
    if release.artifact_type == ArtifactType.IMAGE:
        repository = release.image_uri.split("@")[0].rsplit(":", 1)[0]
        return ReleaseArtifact(
            package_type="Image", image_uri=f"{repository}@{release.image_digest}", **common
        )
    return ReleaseArtifact(
        package_type="Zip",
        s3_bucket=release.zip_bucket,
        s3_key=release.zip_key,
        # Lambda reports CodeSha256 as the base64 of the zip's sha256 digest.
        code_sha256=base64.b64encode(bytes.fromhex(release.zip_sha256)).decode(),
        runtime=release.runtime,
        handler=release.handler,
        **common,
    )


class DeploymentsReleaseSource:
    def newest_version(self) -> str | None:
        """The release a new tenant starts on: the one a fleet-wide rollout is putting on
        every tenant right now, else the one an operator chose for new tenants, else the
        newest registered (docs/rollouts.md)."""
        from deployments.models import Rollout, RolloutStatus

        rolling = (
            Rollout.objects.filter(
                status__in=[RolloutStatus.RUNNING, RolloutStatus.PAUSED], target__kind="all"
            )
            .order_by("-created_at", "-id")
            .values_list("release__version", flat=True)
            .first()
        )
        if rolling:
            return rolling
        chosen = Release.objects.filter(starts_new_tenants=True).values_list("version", flat=True)
        chosen = chosen.first()
        if chosen:
            return chosen
        return (
            Release.objects.order_by("-created_at", "-id").values_list("version", flat=True).first()
        )

    def versions(self) -> list[str]:
        return list(
            Release.objects.order_by("-created_at", "-id").values_list("version", flat=True)
        )

    def artifact(self, version: str, *, region: str) -> ReleaseArtifact:
        """Where a function in ``region`` of the current account finds the release."""
        release = Release.objects.filter(version=version).first()
        if release is None:
            raise LookupError(f"Release {version} does not exist.")
        return located(release_artifact(release), release, region=region)

    def ensure_artifact(self, version: str, *, region: str) -> dict[str, Any]:
        """Copy the release's artifact to ``region`` of the current account if missing."""
        from deployments.artifacts import ensure_artifact_in_region

        return ensure_artifact_in_region(Release.objects.get(version=version), region=region)

    def apply_schema(
        self, *, tenant: Tenant, version: str, on_status: Callable[[str], None]
    ) -> dict[str, Any]:
        if tenant.isolation == Isolation.NONE:
            # The app brings its own database and runs its own migrations: the console
            # has no database of the tenant's to migrate (both the onboarding's and a
            # deployment's schema step come here).
            return {"schema": "no database of the console's: skipped"}
        release = Release.objects.get(version=version)
        result = migrate_database(
            target=database_target(tenant),
            migrations=release_specs(release),
            release_version=version,
            on_status=on_status,
            # Wait briefly for a slot on a busy shared instance, then give the worker back
            # (StepWait below) instead of sitting idle for the full slot wait.
            slots=ServerSlots(wait_s=5),
        )
        record_schema(tenant, version, result)
        if result.error is not None:
            if result.error.kind == FailureKind.SLOT:
                # The shared instance's migration slots are all taken: look again later
                # without holding a worker.
                raise StepWait(f"schema: {result.error.message}", retry_in=20)
            raise RuntimeError(str(result.error))
        return {
            "schema_version": result.current_version,
            "applied": [m.name for m in result.applied],
            "already_applied": len(result.skipped),
        }

"""Registering a release: validate everything first, then store; bad input stores nothing.

Three artifact forms:
- ``zip``: a Lambda deployment package, kept in the artifacts bucket under its sha256;
- ``image``: an image already in ECR, named by tag or digest; the tag is resolved and the
  release pinned to the digest;
- ``archive``: a ``docker save`` / OCI layout tar, pushed into the release repository
  through ECR's layer API (and kept in S3 so other regions can be pushed the same way).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from pydantic import ValidationError

from deployments.artifacts import (
    ArtifactError,
    archive_key,
    read_image_archive,
    release_repository,
)
from deployments.migration_files import MigrationFilesError, parse_migration_files
from deployments.models import ArtifactType, Release, ReleaseMigration
from opsconsole.aws import ecr, s3
from opsconsole.aws.errors import AwsError, AwsNotFound
from opsconsole.jobs.services import job_create
from tenants.app_settings import parse_app_settings, stored_app_settings
from tenants.app_settings import problems as app_settings_problems
from tenants.provisioning import health_check

# The version is the image's ECR tag too: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}, so no "+"
# (semver build metadata); \Z, since "$" would let a final newline through.
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}\Z")
ARCHITECTURES = {"x86_64", "arm64"}
# Lambda's own rules: Handler is [^\s]+ up to 128; a runtime id such as python3.12.
HANDLER_RE = re.compile(r"^[^\s]{1,128}\Z")
RUNTIME_RE = re.compile(r"^[a-z0-9.]{3,32}\Z")


def function_problems(*, runtime: str, handler: str) -> list[str]:
    """What Lambda would refuse of a release's runtime and handler (blank: not given)."""
    problems = []
    if runtime and not RUNTIME_RE.match(runtime):
        problems.append("runtime: a Lambda runtime id such as python3.12 or provided.al2023")
    if handler and not HANDLER_RE.match(handler):
        problems.append("handler: up to 128 characters without spaces (app.handler, bootstrap)")
    return problems


class ReleaseRefused(ValueError):  # noqa: N818 - a refusal, shown to the person
    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class ReleaseInput:
    version: str
    artifact: str  # "zip" | "image" | "archive"
    notes: str = ""
    zip_bytes: bytes | None = None
    image: str = ""  # repository:tag, repository@sha256:..., or a full ECR URI
    archive_bytes: bytes | None = None
    runtime: str = ""
    handler: str = ""
    architecture: str = "x86_64"
    memory_mb: int = 256
    timeout_s: int = 30
    migration_files: Iterable[tuple[str, bytes | str]] = ()
    # The app's health route (docs/app-contract.md).
    health_method: str = "GET"
    health_path: str = "/healthz"
    health_statuses: str | list = "200-299"
    health_timeout_s: int | str = 5
    # tenants.app_settings.AppSettings as a dict (or JSON text); empty: the defaults.
    app_settings: dict | str | None = None


def _check_zip(data: bytes | None, problems: list[str]) -> None:
    if not data:
        problems.append("artifact: the zip is missing or empty")
        return
    if not zipfile.is_zipfile(io.BytesIO(data)):
        problems.append("artifact: the file is not a zip archive")
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            bad = zf.testzip()
            if bad:
                problems.append(f"artifact: {bad} in the zip is corrupt")
            if not zf.namelist():
                problems.append("artifact: the zip is empty")
    except zipfile.BadZipFile as exc:
        problems.append(f"artifact: the zip cannot be read: {exc}")


def _split_image(ref: str) -> tuple[str, str]:
    """(repository, tag or digest) from repo:tag, repo@sha256:..., or a full ECR URI."""
    ref = ref.strip()
    if "/" in ref and ".amazonaws.com/" in ref:
        ref = ref.split(".amazonaws.com/", 1)[1]
    if "@" in ref:
        repo, _, digest = ref.partition("@")
        return repo, digest
    if ":" in ref.rsplit("/", 1)[-1]:
        repo, _, tag = ref.rpartition(":")
        return repo, tag
    return ref, "latest"


def release_register(data: ReleaseInput, *, created_by=None) -> Release:
    """Validate, then store the artifact and the release. Raises ReleaseRefused."""
    problems: list[str] = []
    version = data.version.strip()
    if not VERSION_RE.match(version):
        problems.append(
            "version: letters, digits, '.', '-' or '_', up to 64 (it becomes the ECR image "
            "tag, which allows no '+')"
        )
    elif Release.objects.filter(version=version).exists():
        problems.append(f"version: {version} is already registered (releases are immutable)")
    problems.extend(function_problems(runtime=data.runtime, handler=data.handler))
    if data.architecture not in ARCHITECTURES:
        problems.append(f"architecture: one of {', '.join(sorted(ARCHITECTURES))}")
    if not 128 <= int(data.memory_mb) <= 10240:
        problems.append("memory_mb: between 128 and 10240")
    if not 1 <= int(data.timeout_s) <= 900:
        problems.append("timeout_s: between 1 and 900")
    problems.extend(
        f"{name}: {problem}"
        for name, problem in health_check.problems(
            method=data.health_method,
            path=data.health_path,
            statuses=data.health_statuses,
            timeout_s=data.health_timeout_s,
            function_timeout_s=max(1, int(data.timeout_s)),
        ).items()
    )
    app_settings = _parse_app_settings(data.app_settings, problems)
    try:
        migrations = parse_migration_files(list(data.migration_files))
    except MigrationFilesError as exc:
        migrations = []
        problems.extend(f"migrations: {p}" for p in exc.problems)

    archive = None
    resolved: tuple[str, str, str] | None = None  # uri, digest, repository
    if data.artifact == "zip":
        _check_zip(data.zip_bytes, problems)
        if not data.runtime:
            problems.append("runtime: a zip needs a runtime (python3.12, provided.al2023...)")
        if not data.handler:
            problems.append("handler: a zip needs a handler (app.handler, bootstrap...)")
    elif data.artifact == "image":
        if not data.image:
            problems.append("image: name the image by tag or digest")
        else:
            repository, ref = _split_image(data.image)
            try:
                found = ecr.describe_image(repository=repository, tag_or_digest=ref)
            except AwsNotFound:
                found = None
                problems.append(f"image: no ECR repository {repository}")
            except AwsError as exc:
                found = None
                problems.append(f"image: ECR answered {exc}")
            else:
                if found is None:
                    problems.append(f"image: {repository} has no image {ref}")
            if found is not None:
                repo = ecr.describe_repository(name=repository) or {}
                resolved = (
                    f"{repo.get('repositoryUri', repository)}:{ref}"
                    if not ref.startswith("sha256:")
                    else f"{repo.get('repositoryUri', repository)}@{ref}",
                    found["imageDigest"],
                    repository,
                )
    elif data.artifact == "archive":
        if not data.archive_bytes:
            problems.append("artifact: the image archive is missing or empty")
        else:
            try:
                archive = read_image_archive(data.archive_bytes)
            except ArtifactError as exc:
                problems.append(f"artifact: {exc}")
    else:
        problems.append("artifact: one of zip, image, archive")
    if problems:
        raise ReleaseRefused(problems)

    fields: dict = {}
    bucket = settings.BASELINE["artifact_bucket"]
    if data.artifact == "zip":
        assert data.zip_bytes is not None
        sha = hashlib.sha256(data.zip_bytes).hexdigest()
        key = f"releases/sha256/{sha}.zip"
        # Content-addressed: an object already there is this very zip.
        if s3.head_object(bucket=bucket, key=key) is None:
            s3.put_object(
                bucket=bucket,
                key=key,
                body=data.zip_bytes,
                content_type="application/zip",
                metadata={"release": version},
            )
        fields = {
            "artifact_type": ArtifactType.ZIP,
            "zip_bucket": bucket,
            "zip_key": key,
            "zip_sha256": sha,
            "runtime": data.runtime,
            "handler": data.handler,
        }
    elif data.artifact == "image":
        assert resolved is not None
        fields = {
            "artifact_type": ArtifactType.IMAGE,
            "image_uri": resolved[0],
            "image_digest": resolved[1],
        }
    else:
        assert archive is not None and data.archive_bytes is not None
        fields = _store_archive(version, archive, data.archive_bytes, bucket)
    try:
        with transaction.atomic():
            release = Release.objects.create(
                version=version,
                notes=data.notes,
                architecture=data.architecture,
                memory_mb=data.memory_mb,
                timeout_s=data.timeout_s,
                health_method=data.health_method.upper(),
                health_path=data.health_path,
                health_statuses=health_check.normalize_statuses(data.health_statuses),
                health_timeout_s=int(data.health_timeout_s),
                app_settings=app_settings,
                created_by=created_by if created_by and created_by.is_authenticated else None,
                **fields,
            )
            if data.artifact == "archive":
                # Queued on commit: the worker pushes the kept archive through ECR's layers.
                job_create(
                    kind="release_push",
                    subject_type="release",
                    subject_id=version,
                    created_by=created_by,
                )
            ReleaseMigration.objects.bulk_create(
                ReleaseMigration(
                    release=release,
                    version=m.version,
                    name=m.name,
                    sql=m.sql,
                    sha256=m.checksum,
                )
                for m in migrations
            )
    except IntegrityError:
        raise ReleaseRefused([f"version: {version} is already registered"]) from None
    return release


def _parse_app_settings(raw: dict | str | None, problems: list[str]) -> dict:
    """The release's app settings as stored: only what differs from the defaults."""
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(f"app_settings: not JSON: {exc}")
            return {}
    if raw is not None and not isinstance(raw, dict):
        problems.append("app_settings: a JSON object")
        return {}
    try:
        parsed = parse_app_settings(raw)
    except ValidationError as exc:
        problems.extend(app_settings_problems(exc, prefix="app_settings."))
        return {}
    return stored_app_settings(parsed)


def _store_archive(version: str, archive, archive_bytes: bytes, bucket: str) -> dict:
    """Keep the archive in S3 and pin the release to its manifest's digest; a worker pushes
    it into ECR (job ``release_push``), so the request never waits on the layer uploads.

    The digest is the sha256 of the manifest we will put, so it is known now.
    """
    repository = release_repository()
    try:
        repo = ecr.describe_repository(name=repository)
    except AwsError as exc:
        raise ReleaseRefused([f"artifact: ECR answered {exc}"]) from exc
    if repo is None:
        raise ReleaseRefused([f"artifact: no ECR repository {repository} to push into"])
    manifest = ecr.build_manifest(config_blob=archive.config_blob, layers=archive.layers)
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    key = archive_key(digest)
    if s3.head_object(bucket=bucket, key=key) is None:
        s3.put_object(bucket=bucket, key=key, body=archive_bytes, content_type="application/x-tar")
    return {
        "artifact_type": ArtifactType.IMAGE,
        "image_uri": f"{repo['repositoryUri']}:{version}",
        "image_digest": digest,
    }


def release_is_deployed(release: Release) -> bool:
    from tenants.models import Tenant

    return Tenant.objects.filter(current_release=release.version).exists() or (
        release.rollouts.exists()
    )


def release_start_new_tenants_on(release: Release) -> None:
    """New tenants start on ``release`` from now on. The partial unique index admits one
    chosen release, so the old choice is cleared first, in the same transaction."""
    with transaction.atomic():
        Release.objects.filter(starts_new_tenants=True).exclude(pk=release.pk).update(
            starts_new_tenants=False
        )
        Release.objects.filter(pk=release.pk).update(starts_new_tenants=True)
    release.starts_new_tenants = True

"""Releases: register from an image (tag or digest) as JSON, or upload a zip or an image
archive as multipart; list and get."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, File, Form, Router, Schema, Status
from ninja.files import UploadedFile
from ninja.pagination import paginate

from deployments.models import Release
from deployments.releases import ReleaseInput, ReleaseRefused, release_register
from opsconsole.accounts.models import Role
from opsconsole.api.auth import audit, require
from opsconsole.api.errors import refused
from opsconsole.api.schemas import answers

router = Router(tags=["releases"])


class MigrationIn(Schema):
    name: str = Field(description="File name, e.g. 0002_add_orders.sql (ordered by name).")
    sql: str


class ReleaseCommon(Schema):
    version: str = Field(description="Unique: letters, digits and . _ - +, at most 64.")
    notes: str = ""
    runtime: str = Field("", description="zip only: python3.12, provided.al2023, ...")
    handler: str = ""
    architecture: Literal["x86_64", "arm64"] = "x86_64"
    memory_mb: int = Field(256, ge=128, le=10240)
    timeout_s: int = Field(30, ge=1, le=900)
    health_method: str = "GET"
    health_path: str = "/healthz"
    health_statuses: str = Field("200-299", description='e.g. "200-299,301"')
    health_timeout_s: int = Field(5, ge=1, le=29)
    app_settings: dict | None = Field(None, description="See docs/app-contract.md.")


class ReleaseImageIn(ReleaseCommon):
    image: str = Field(
        description="repository:tag, repository@sha256:<digest> or a full ECR image URI."
    )
    migrations: list[MigrationIn] = []


class ReleaseUploadIn(ReleaseCommon):
    artifact: Literal["zip", "archive"] = Field(
        description="zip: a Lambda zip (e.g. a Go bootstrap); archive: `docker save` output."
    )


class ReleaseOut(Schema):
    version: str
    notes: str
    artifact_type: str
    artifact: str
    image_digest: str
    zip_sha256: str
    runtime: str
    handler: str
    architecture: str
    memory_mb: int
    timeout_s: int
    health_method: str
    health_path: str
    health_statuses: str
    health_timeout_s: int
    app_settings: dict
    starts_new_tenants: bool
    migrations: list[str]
    created_at: datetime

    @staticmethod
    def resolve_artifact(obj: Release) -> str:
        return obj.artifact_summary

    @staticmethod
    def resolve_migrations(obj: Release) -> list[str]:
        return [m.name for m in obj.migrations.all()]


def _register(request: HttpRequest, data: ReleaseInput) -> Release:
    require(request, Role.OPERATOR)
    try:
        release = release_register(data, created_by=request.user)
    except ReleaseRefused as exc:
        raise refused(exc.problems) from exc
    audit(request, "release.register", release)
    return release


def _input(body: ReleaseCommon, **extra) -> ReleaseInput:
    fields = body.dict(exclude={"image", "migrations", "artifact"})
    return ReleaseInput(**fields, **extra)


@router.post("/", response=answers({201: ReleaseOut}, 400, 403))
def release_create(request: HttpRequest, body: ReleaseImageIn):
    """Register a release from a container image already pushed to a registry."""
    data = _input(
        body,
        artifact="image",
        image=body.image,
        migration_files=[(m.name, m.sql) for m in body.migrations],
    )
    return Status(201, _register(request, data))


@router.post("/upload", response=answers({201: ReleaseOut}, 400, 403))
def release_upload(
    request: HttpRequest,
    body: Form[ReleaseUploadIn],
    file: File[UploadedFile],
    migrations: list[UploadedFile] = File(None),  # noqa: B008 - ninja's way to declare files
):
    """Upload a zip or an image archive (multipart/form-data), with SQL migration files."""
    blob = file.read()
    data = _input(
        body,
        artifact=body.artifact,
        zip_bytes=blob if body.artifact == "zip" else None,
        archive_bytes=blob if body.artifact == "archive" else None,
        migration_files=sorted((f.name, f.read()) for f in migrations or []),
    )
    return Status(201, _register(request, data))


@router.get("/", response=answers({200: list[ReleaseOut]}))
@paginate
def release_list(request: HttpRequest):
    """Newest first."""
    return Release.objects.prefetch_related("migrations").order_by("-created_at")


@router.get("/{version}", response=answers({200: ReleaseOut}))
def release_get(request: HttpRequest, version: str):
    return get_object_or_404(Release.objects.prefetch_related("migrations"), version=version)

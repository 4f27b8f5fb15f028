import hashlib

from django.conf import settings
from django.db import models


class ArtifactType(models.TextChoices):
    IMAGE = "image", "Container image (ECR)"
    ZIP = "zip", "Zip archive (S3)"


class Release(models.Model):
    """A version of the tenant application: one artifact plus ordered SQL migrations.

    Immutable once deployed anywhere (enforced by the releases issue's services).
    """

    version = models.CharField(max_length=64, unique=True)
    notes = models.TextField(blank=True)
    artifact_type = models.CharField(max_length=8, choices=ArtifactType.choices)
    # Image: pinned by digest; the URI keeps the tag it was registered with, for people.
    image_uri = models.CharField(max_length=512, blank=True)
    image_digest = models.CharField(max_length=80, blank=True)
    # Zip: stored in the artifacts bucket under its sha256.
    zip_bucket = models.CharField(max_length=63, blank=True)
    zip_key = models.CharField(max_length=512, blank=True)
    zip_sha256 = models.CharField(max_length=64, blank=True)
    runtime = models.CharField(max_length=32, blank=True)
    handler = models.CharField(max_length=128, blank=True)
    architecture = models.CharField(max_length=8, default="x86_64")
    memory_mb = models.PositiveIntegerField(default=256)
    timeout_s = models.PositiveIntegerField(default=30)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.version

    @property
    def artifact_summary(self) -> str:
        if self.artifact_type == ArtifactType.IMAGE:
            return f"{self.image_uri.split('@')[0]}@{self.image_digest}"
        return f"s3://{self.zip_bucket}/{self.zip_key}"


class ReleaseMigration(models.Model):
    """One SQL migration of a release, kept as text with its sha256."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="migrations")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    sql = models.TextField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["release", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["release", "version"], name="release_migration_version_unique"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def checksum(sql: str) -> str:
        return hashlib.sha256(sql.encode("utf-8")).hexdigest()


class SchemaStatus(models.TextChoices):
    OK = "ok", "Up to date with its release"
    FAILED = "failed", "Failed"


class TenantSchema(models.Model):
    """Where a tenant database's schema stands, as the last migration run left it."""

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.CASCADE, related_name="schema")
    version = models.PositiveIntegerField(null=True, blank=True)
    release = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=8, choices=SchemaStatus.choices)
    failed_migration = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    applied_last_run = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant__slug"]

    def __str__(self) -> str:
        return f"{self.tenant} at {self.version}"

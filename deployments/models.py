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
    # The app's own health route, checked on each new version before traffic moves to it
    # (docs/app-contract.md). The database has the defaults too: a console still running
    # the previous code while this one rolls out can go on registering releases.
    health_method = models.CharField(max_length=8, default="GET", db_default="GET")
    health_path = models.CharField(max_length=255, default="/healthz", db_default="/healthz")
    health_statuses = models.CharField(max_length=100, default="200-299", db_default="200-299")
    health_timeout_s = models.PositiveSmallIntegerField(default=5, db_default=5)
    # The release an operator chose for new tenants (at most one); without a choice they
    # start on the newest registered. A team registers a release before it is proven:
    # the newest is not always the one to start a customer on.
    starts_new_tenants = models.BooleanField(default=False, db_default=False)
    # tenants.app_settings.AppSettings: the environment the code reads, the API shape,
    # extra permissions and alarm rules (docs/app-contract.md). Empty: the defaults.
    app_settings = models.JSONField(default=dict, blank=True, db_default={})
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["starts_new_tenants"],
                condition=models.Q(starts_new_tenants=True),
                name="one_release_starts_new_tenants",
            )
        ]

    def __str__(self) -> str:
        return self.version

    @property
    def health_summary(self) -> str:
        return (
            f"{self.health_method} {self.health_path} answers {self.health_statuses} "
            f"within {self.health_timeout_s} s"
        )

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


# --- Rollouts (issue 5) -------------------------------------------------------------------


class RolloutStatus(models.TextChoices):
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    HALTED = "halted", "Halted"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"
    SUCCEEDED = "succeeded", "Succeeded"


ROLLOUT_FINISHED = [RolloutStatus.CANCELLED, RolloutStatus.SUCCEEDED]
ROLLOUT_OPEN = [
    RolloutStatus.RUNNING,
    RolloutStatus.PAUSED,
    RolloutStatus.HALTED,
    RolloutStatus.CANCELLING,
]


class RolloutMethod(models.TextChoices):
    """How a rollout puts its release on a tenant."""

    DEPLOY = "deploy", "Deploy the release"
    # A roll back's quick path: each tenant's alias returns to the version it ran before
    # (one control call), or the release is deployed again where that version is gone.
    ALIAS = "alias", "Move the alias back"


class Traffic(models.TextChoices):
    ALL_AT_ONCE = "all", "All at once"
    CANARY = "canary", "Canary on the alias"


def watch_seconds(*, bake_s: int, wave: int) -> int:
    """How long a deployment of ``wave`` watches its tenant after the alias moved.

    The canary wave watches the whole bake (``bake_s``): it is where the release first
    meets real traffic, and its deployments are few. A later wave's deployment holds one
    of the ``max_parallel`` slots while it watches, so it watches at most
    ``DEPLOY_WATCH_S`` (0 by default: one look at the alarms as the alias moves); the
    rest of its bake is the orchestrator's pause before the next wave (docs/rollouts.md).
    """
    if wave == 0:
        return bake_s
    return min(bake_s, settings.DEPLOY_WATCH_S)


class Rollout(models.Model):
    """One release put on a set of tenants, wave by wave (docs/rollouts.md).

    The rows are the state: ``rollout_advance`` looks at them and starts what is due, so it
    can run any number of times, from any worker, in any order.
    """

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="rollouts")
    status = models.CharField(
        max_length=12, choices=RolloutStatus.choices, default=RolloutStatus.RUNNING
    )
    status_reason = models.CharField(max_length=500, blank=True)
    # What was asked for: {"kind": "all"|"rings"|"tags"|"tenants", "values": [...]}.
    target = models.JSONField(default=dict)
    wave_sizes = models.JSONField(default=list)
    current_wave = models.PositiveSmallIntegerField(default=0)
    wave_finished_at = models.DateTimeField(null=True, blank=True)
    # Resume after a halt: failures that ended before this no longer count.
    failures_acknowledged_at = models.DateTimeField(null=True, blank=True)
    max_parallel = models.PositiveSmallIntegerField(default=10)
    canary_max_failures = models.PositiveSmallIntegerField(default=0)
    wave_failure_pct = models.PositiveSmallIntegerField(default=10)
    bake_s = models.PositiveIntegerField(default=300)
    traffic = models.CharField(max_length=8, choices=Traffic.choices, default=Traffic.ALL_AT_ONCE)
    canary_percent = models.PositiveSmallIntegerField(default=10)
    canary_minutes = models.PositiveSmallIntegerField(default=10)
    # A rollback is a rollout of the previous release to the tenants another one touched.
    rollback_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rollbacks"
    )
    method = models.CharField(
        max_length=8,
        choices=RolloutMethod.choices,
        default=RolloutMethod.DEPLOY,
        db_default=RolloutMethod.DEPLOY,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"rollout #{self.pk} of {self.release}"

    @property
    def is_finished(self) -> bool:
        return self.status in ROLLOUT_FINISHED

    def watch_s(self, wave: int) -> int:
        return watch_seconds(bake_s=self.bake_s, wave=wave)

    def pause_after_s(self, wave: int) -> int:
        """The orchestrator's pause after ``wave``: the bake its deployments did not watch.

        Either way the wave's last tenant has run the release for ``bake_s`` before the
        next wave starts; the watched part of it can fail the deployment."""
        return max(0, self.bake_s - self.watch_s(wave))


class DeploymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"


DEPLOYMENT_DONE = [
    DeploymentStatus.SUCCEEDED,
    DeploymentStatus.FAILED,
    DeploymentStatus.SKIPPED,
    DeploymentStatus.CANCELLED,
]


class Deployment(models.Model):
    """The rollout's release on one tenant: one ``tenant_deploy`` job."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="deployments")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    wave = models.PositiveSmallIntegerField()
    position = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=10, choices=DeploymentStatus.choices, default=DeploymentStatus.PENDING
    )
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    from_release = models.CharField(max_length=64, blank=True)
    from_version = models.CharField(max_length=16, blank=True)
    to_version = models.CharField(max_length=16, blank=True)
    step = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    canary_started_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rollout", "wave", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "tenant"], name="deployment_unique")
        ]
        indexes = [models.Index(fields=["rollout", "wave", "status"])]

    def __str__(self) -> str:
        return f"{self.rollout_id}:{self.tenant_id}"

    @property
    def duration(self):
        if self.started_at is None:
            return None
        from django.utils import timezone

        return (self.finished_at or timezone.now()) - self.started_at


class ApiToken(models.Model):
    """A CI credential: acts as its user (and that user's role). Only a hash is stored."""

    name = models.CharField(max_length=100)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    prefix = models.CharField(max_length=12, db_index=True)
    key_sha256 = models.CharField(max_length=64, unique=True)
    # The token acts with this role or its owner's, whichever is lower (a read-only CI
    # token of an admin). Blank on tokens made before roles: the owner's role.
    role = models.CharField(max_length=16, blank=True, db_default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # Null only on tokens made before expiry existed; new tokens always expire.
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

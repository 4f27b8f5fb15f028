from decimal import Decimal

from django.conf import settings
from django.db import models


class TenantStatus(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    ACTIVE = "active", "Active"
    FAILED = "failed", "Failed"
    SUSPENDED = "suspended", "Suspended"
    OFFBOARDING = "offboarding", "Offboarding"
    OFFBOARDED = "offboarded", "Offboarded"


class Isolation(models.TextChoices):
    SHARED = "shared", "Shared instance (a database of its own)"
    DEDICATED = "dedicated", "Dedicated RDS instance"
    SERVERLESS = "serverless", "Aurora Serverless v2 cluster"
    # The app brings its own database (a hosted Postgres): no RDS, no database secret,
    # no migrations step.
    NONE = "none", "None: the app brings its own database"


class AlarmTopicChoice(models.TextChoices):
    NONE = "none", "Nobody (alarms show in the console only)"
    TENANT = "tenant", "The tenant's own SNS topic"
    FLEET = "fleet", "The fleet's SNS topic"


class Tenant(models.Model):
    """One customer: its desired state (spec) and what the console last saw of its stack.

    Secret values (database password, secret environment variables) are never stored here:
    only their names and the ARNs of the Secrets Manager secrets that hold them.
    """

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=40, unique=True)
    contact_email = models.EmailField(blank=True)
    region = models.CharField(max_length=32)
    # The AWS account the tenant's stack lives in (a cell); empty: the console's own. Fixed
    # at onboarding: every resource is there. PROTECT: an account is not forgotten while a
    # tenant row (an offboarded one's backups too) names it.
    aws_account = models.ForeignKey(
        "awsaccounts.AwsAccount",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="tenants",
    )
    ring = models.PositiveSmallIntegerField(
        default=1, help_text="0 = internal/canary; rollouts go ring by ring."
    )
    tags = models.JSONField(default=dict, blank=True)

    isolation = models.CharField(max_length=16, choices=Isolation.choices, default=Isolation.SHARED)
    db_instance_class = models.CharField(max_length=32, default="db.t4g.micro")
    db_allocated_storage_gb = models.PositiveIntegerField(default=20)
    db_backup_retention_days = models.PositiveSmallIntegerField(default=7)
    db_storage_encrypted = models.BooleanField(default=True)
    db_deletion_protection = models.BooleanField(default=True)
    serverless_min_acu = models.DecimalField(max_digits=4, decimal_places=1, default=Decimal("0.5"))
    serverless_max_acu = models.DecimalField(max_digits=4, decimal_places=1, default=Decimal("4"))
    use_rds_proxy = models.BooleanField(default=False)
    # Blank: the console's default engine version for the isolation (settings).
    db_engine_version = models.CharField(max_length=16, blank=True)
    db_multi_az = models.BooleanField(default=False)
    db_backup_window = models.CharField(max_length=11, blank=True)  # "03:00-04:00" UTC
    db_maintenance_window = models.CharField(max_length=19, blank=True)  # "mon:04:00-mon:05:00"
    # Aurora Serverless v2 at 0 ACU: how long idle before it pauses (AWS: 300-86400 s).
    serverless_seconds_until_auto_pause = models.PositiveIntegerField(null=True, blank=True)

    # Empty: the release's memory and timeout (a tenant overrides them here).
    lambda_memory_mb = models.PositiveIntegerField(null=True, blank=True)
    lambda_timeout_s = models.PositiveIntegerField(null=True, blank=True)
    # A function outside the VPC reaches the internet without a NAT; only for a tenant
    # with nothing it needs inside (isolation none, no attachments).
    function_in_vpc = models.BooleanField(default=True)
    # tenants.app_settings.TenantOverrides: runtime, handler, API shape, alarm rules.
    app_overrides = models.JSONField(default=dict, blank=True)
    # Blank: settings.LOG_RETENTION_DAYS.
    log_retention_days = models.PositiveSmallIntegerField(null=True, blank=True)
    alarm_topic = models.CharField(
        max_length=8, choices=AlarmTopicChoice.choices, default=AlarmTopicChoice.NONE
    )
    # The cost estimate's traffic: requests a month and their average duration.
    expected_requests_month = models.PositiveIntegerField(null=True, blank=True)
    expected_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    reserved_concurrency = models.PositiveIntegerField(null=True, blank=True)
    env_vars = models.JSONField(default=dict, blank=True)
    # Names only; the values live in the tenant's env secret in Secrets Manager.
    secret_env_names = models.JSONField(default=list, blank=True)
    custom_domain = models.CharField(max_length=253, blank=True)
    certificate_arn = models.CharField(max_length=2048, blank=True)

    # The release the tenant should run and the one it runs (versions, so this app does
    # not depend on deployments; deployments depends on tenants).
    desired_release = models.CharField(max_length=64, blank=True)
    current_release = models.CharField(max_length=64, blank=True)

    status = models.CharField(
        max_length=16,
        choices=TenantStatus.choices,
        default=TenantStatus.PROVISIONING,
        db_index=True,
    )
    status_reason = models.CharField(max_length=255, blank=True)
    endpoint_url = models.URLField(max_length=512, blank=True)
    # Bumped by every configuration edit; the reconcile job records what it applied.
    config_generation = models.PositiveIntegerField(default=1)
    applied_generation = models.PositiveIntegerField(default=0)

    # The onboarding form's one-time token: a second submit of the same form finds the
    # tenant the first one created instead of making another.
    onboarding_token = models.CharField(max_length=64, blank=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    offboarded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["slug"]
        indexes = [
            # The fleet page joins every tenant to its FleetHealth row to count and order
            # them (tenants.health.fleet): from this index alone, not the wide rows.
            models.Index(fields=["id"], include=["status", "slug"], name="tenant_fleet_cover"),
        ]

    def __str__(self) -> str:
        return self.slug


class ResourceStatus(models.TextChoices):
    PRESENT = "present", "Present"
    MISSING = "missing", "Missing"
    DELETED = "deleted", "Deleted"


class TenantResource(models.Model):
    """One AWS resource of a tenant, as the last step that touched it recorded it."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="resources")
    kind = models.CharField(max_length=32)
    name = models.CharField(max_length=255)
    identifier = models.CharField(max_length=255, blank=True)
    arn = models.CharField(max_length=2048, blank=True)
    region = models.CharField(max_length=32)
    status = models.CharField(
        max_length=16, choices=ResourceStatus.choices, default=ResourceStatus.PRESENT
    )
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "name"], name="tenant_resource_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


class Attachment(models.Model):
    """An existing service in the VPC a tenant's function must reach (a shared Redis).

    ``tenant`` empty: every tenant. The console admits the tenant's function on ``port``
    in ``security_group_id`` (the service's group), sets ``variables`` on the function,
    checks both in drift and removes the rule at offboarding.
    """

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    name = models.SlugField(max_length=40)
    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField()
    security_group_id = models.CharField(max_length=32)
    # NAME -> template: {host}, {port} and the app-settings placeholders.
    variables = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="attachment_unique"),
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(tenant=None), name="fleet_attachment_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.host}:{self.port}"


class AlarmSubscription(models.Model):
    """Who an alarm topic notifies. ``tenant`` empty: the fleet's topic."""

    class Protocol(models.TextChoices):
        EMAIL = "email", "Email"
        HTTPS = "https", "HTTPS"

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="subscriptions"
    )
    protocol = models.CharField(max_length=8, choices=Protocol.choices)
    endpoint = models.CharField(max_length=2048)
    # Set once SNS answers; "pending confirmation" until the address confirms (the fleet's
    # topic: until every region's does).
    subscription_arn = models.CharField(max_length=2048, blank=True)
    # The fleet's topic lives in every region tenants use, and an address confirms each
    # region's subscription on its own: {region: subscription ARN or "pending confirmation"}.
    region_states = models.JSONField(default=dict, blank=True, db_default={})
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["protocol", "endpoint"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "protocol", "endpoint"], name="subscription_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.protocol} {self.endpoint}"


class TenantScope(models.Model):
    """Limits one user to some tenants: an account manager, a customer's own engineer.

    A user without a scope row sees every tenant their role allows. A user with one sees
    only the tenants listed here, plus those whose tags match one of ``tags`` (``{"team":
    ["acme", "globex"]}``: a tenant tagged ``team=acme`` or ``team=globex``). An empty
    scope sees nothing. Every other tenant, and everything about it, answers 404.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_scope"
    )
    tenants = models.ManyToManyField(Tenant, blank=True, related_name="scoped_users")
    # Tag key -> the values that admit a tenant.
    tags = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"scope of {self.user}"


class FleetHealth(models.Model):
    """A tenant's row of the fleet page as the refresh worker last found it
    (tenants.health.fleet_refresh): its alarms in ALARM, missing records and last-hour
    numbers, and ``signals_rank``, the verdict of those alone. The page sorts, filters and
    counts on these columns in SQL; the tenant's lifecycle status is read live from its
    own row and joins in there (tenants.health.fleet), so suspending a tenant shows at once.
    """

    tenant = models.OneToOneField(
        Tenant, primary_key=True, on_delete=models.CASCADE, related_name="fleet_health"
    )
    # tenants.health.status: 0 healthy, 1 degraded, 2 down.
    signals_rank = models.PositiveSmallIntegerField()
    alarms = models.JSONField(default=list)
    missing = models.JSONField(default=list)  # [[kind, name], ...]
    # Why its group's alarm states are unknown (none were ever read): not healthy either.
    unavailable = models.CharField(max_length=512, blank=True)
    invocations = models.FloatField(null=True)
    errors = models.FloatField(null=True)
    error_rate = models.FloatField(null=True)
    # When the worker read the numbers; empty: nobody looked at the tenant yet.
    metrics_at = models.DateTimeField(null=True)
    p95_ms = models.FloatField(null=True)
    p95_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [
            # What the page's counts and orderings read of each row, joined to the tenant's
            # own covering index (Tenant.Meta): no row of either table is read for them.
            models.Index(
                fields=["tenant"],
                include=["signals_rank", "error_rate", "p95_ms"],
                name="fleet_health_cover",
            ),
        ]

    def __str__(self) -> str:
        return f"fleet health of tenant {self.tenant_id}"

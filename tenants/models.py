from django.db import models


class TenantStatus(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    ACTIVE = "active", "Active"
    FAILED = "failed", "Failed"
    SUSPENDED = "suspended", "Suspended"
    OFFBOARDING = "offboarding", "Offboarding"
    OFFBOARDED = "offboarded", "Offboarded"


class Tenant(models.Model):
    """One customer and its stack. The onboarding issue adds the full spec and resources."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=40, unique=True)
    contact_email = models.EmailField(blank=True)
    region = models.CharField(max_length=32)
    ring = models.PositiveSmallIntegerField(default=1)
    tags = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16,
        choices=TenantStatus.choices,
        default=TenantStatus.PROVISIONING,
        db_index=True,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

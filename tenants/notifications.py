"""Who a tenant's alarms notify: the topic choice and the subscriptions, as admins change
them. Each change is saved, audit-logged and applied to AWS by a job
(``tenant_notifications`` for a tenant, ``fleet_alarm_topic`` for the fleet's topic);
nothing here calls AWS. tenants.provisioning.alarm_topic does the AWS side.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import transaction
from django.http import HttpRequest

from opsconsole.audit.services import audit_record
from opsconsole.jobs.models import Job
from opsconsole.jobs.registry import register_job_kind
from opsconsole.jobs.services import job_create
from tenants.models import AlarmSubscription, AlarmTopicChoice, Tenant, TenantStatus
from tenants.provisioning.alarm_topic import (
    PENDING_TEXT,
    step_alarm_topic,
    step_fleet_topic,
)
from tenants.provisioning.alarms import step_alarms

FLEET_SUBJECT = ("fleet", "alarm-topic")
MAX_ENDPOINT = 2048
_CLOSED = (TenantStatus.OFFBOARDING, TenantStatus.OFFBOARDED)


class NotificationError(Exception):
    """A change refused, with why (shown to the admin as it is)."""


def subscription_status(row: AlarmSubscription) -> str:
    if not row.subscription_arn:
        return "not applied yet"
    regions = row.region_states or {}
    if len(regions) > 1 and row.subscription_arn == PENDING_TEXT:
        # The fleet's topic in several regions: each region's subscription confirms apart.
        pending = sorted(r for r, v in regions.items() if v == PENDING_TEXT)
        confirmed = sorted(r for r, v in regions.items() if v != PENDING_TEXT)
        said = f"pending confirmation in {', '.join(pending)}"
        return f"{said}; confirmed in {', '.join(confirmed)}" if confirmed else said
    if row.subscription_arn == PENDING_TEXT:
        return "pending confirmation"
    if len(regions) > 1:
        return f"confirmed in {', '.join(sorted(regions))}"
    return "confirmed"


def clean_endpoint(protocol: str, endpoint: str) -> str:
    """The endpoint as it will be subscribed, or NotificationError saying what is wrong."""
    endpoint = (endpoint or "").strip()
    if not endpoint:
        raise NotificationError("Give an email address or an https:// URL.")
    if len(endpoint) > MAX_ENDPOINT:
        raise NotificationError(f"At most {MAX_ENDPOINT} characters.")
    if protocol == AlarmSubscription.Protocol.EMAIL:
        try:
            validate_email(endpoint)
        except ValidationError:
            raise NotificationError(f"{endpoint!r} is not an email address.") from None
        return endpoint
    if protocol == AlarmSubscription.Protocol.HTTPS:
        if not endpoint.lower().startswith("https://"):
            raise NotificationError(
                f"{endpoint!r}: an HTTPS endpoint starts with https:// (SNS delivers alarms "
                "to it over TLS only)."
            )
        parts = urlsplit(endpoint)
        if parts.username or parts.password:
            # It would be stored, shown on this page and written to the audit log.
            raise NotificationError(
                "No user name or password in the URL: the console would store and show it."
            )
        try:
            URLValidator(schemes=["https"])(endpoint)
        except ValidationError:
            raise NotificationError(f"{endpoint!r} is not a valid https:// URL.") from None
        return endpoint
    raise NotificationError(f"Unknown protocol {protocol!r}: email or https.")


def _open(tenant: Tenant) -> None:
    if tenant.status in _CLOSED:
        raise NotificationError(f"{tenant.slug} is {tenant.get_status_display().lower()}.")


def _tenant_job(tenant: Tenant, request: HttpRequest) -> Job:
    return job_create(
        kind="tenant_notifications",
        subject_type="tenant",
        subject_id=tenant.slug,
        created_by=request.user,
    )


def _fleet_job(request: HttpRequest) -> Job:
    return job_create(
        kind="fleet_alarm_topic",
        subject_type=FLEET_SUBJECT[0],
        subject_id=FLEET_SUBJECT[1],
        created_by=request.user,
    )


def _audit(request: HttpRequest, action: str, tenant: Tenant | None, **details) -> None:
    if tenant is not None:
        audit_record(request=request, action=f"tenant.{action}", obj=tenant, **details)
    else:
        audit_record(
            request=request,
            action=f"fleet.{action}",
            object_type="fleet",
            object_id=FLEET_SUBJECT[1],
            object_repr="fleet alarm topic",
            **details,
        )


def set_alarm_topic(*, tenant: Tenant, choice: str, request: HttpRequest) -> Job:
    """Point the tenant's alarms at nobody, its own topic or the fleet's."""
    _open(tenant)
    if choice not in AlarmTopicChoice.values:
        raise NotificationError(f"Unknown choice {choice!r}: none, tenant or fleet.")
    with transaction.atomic():
        before = tenant.alarm_topic
        tenant.alarm_topic = choice
        tenant.save(update_fields=["alarm_topic", "updated_at"])
        job = _tenant_job(tenant, request)
        _audit(request, "alarm_topic", tenant, before=before, after=choice)
    return job


def add_subscription(
    *, tenant: Tenant | None, protocol: str, endpoint: str, request: HttpRequest
) -> tuple[AlarmSubscription, Job | None]:
    """A new subscriber of the tenant's own topic (``tenant``) or the fleet's (None). The
    job runs only when the topic is in use; a tenant's rows wait for its own topic."""
    if tenant is not None:
        _open(tenant)
    endpoint = clean_endpoint(protocol, endpoint)
    rows = AlarmSubscription.objects.filter(tenant=tenant, protocol=protocol)
    # Checked here too: the unique constraint does not hold for the fleet's rows (NULL).
    if rows.filter(endpoint__iexact=endpoint).exists():
        raise NotificationError(f"{endpoint} is already notified.")
    with transaction.atomic():
        row = AlarmSubscription.objects.create(tenant=tenant, protocol=protocol, endpoint=endpoint)
        job = _job_for(tenant, request)
        _audit(request, "alarm_subscribe", tenant, protocol=protocol, endpoint=endpoint)
    return row, job


def remove_subscription(
    *, tenant: Tenant | None, subscription_id: int, request: HttpRequest
) -> Job | None:
    row = AlarmSubscription.objects.filter(pk=subscription_id, tenant=tenant).first()
    if row is None:
        raise NotificationError("No such subscriber (removed already?).")
    with transaction.atomic():
        row.delete()
        job = _job_for(tenant, request)
        _audit(request, "alarm_unsubscribe", tenant, protocol=row.protocol, endpoint=row.endpoint)
    return job


def refresh(*, tenant: Tenant | None, request: HttpRequest) -> Job:
    """Apply again and read back who has confirmed since (SNS tells nobody when one does)."""
    if tenant is not None:
        _open(tenant)
    with transaction.atomic():
        job = _tenant_job(tenant, request) if tenant is not None else _fleet_job(request)
        _audit(request, "alarm_refresh", tenant)
    return job


def _job_for(tenant: Tenant | None, request: HttpRequest) -> Job | None:
    if tenant is None:
        return _fleet_job(request)
    if tenant.alarm_topic == AlarmTopicChoice.TENANT:
        return _tenant_job(tenant, request)
    return None


register_job_kind(
    "tenant_notifications",
    label="Apply alarm notifications",
    steps=[
        ("alarm_topic", "Alarm topic and its subscriptions", step_alarm_topic),
        ("alarms", "Alarms and their actions", step_alarms),
    ],
)
register_job_kind(
    "fleet_alarm_topic",
    label="Apply the fleet's alarm topic",
    steps=[("fleet_topic", "The fleet's topic and subscriptions, every region", step_fleet_topic)],
)

"""Tenant actions. Views call these; each records the change, queues its job on commit and
writes the audit log. Nothing here waits on AWS except writing secret values, which must go
straight to Secrets Manager and never through the console's database or the broker.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.http import HttpRequest

from opsconsole.audit.services import audit_record
from opsconsole.aws.clients import aws_account
from opsconsole.jobs.models import Job, JobStatus
from opsconsole.jobs.services import job_create
from tenants.forms import TenantConfigForm, TenantOnboardForm
from tenants.models import Tenant, TenantStatus
from tenants.provisioning.env_secret import write_env_secret


class TenantActionError(Exception):
    """The action cannot be done in the tenant's current state (shown to the user)."""


def _job(tenant: Tenant, kind: str, request: HttpRequest, **params) -> Job:
    return job_create(
        kind=kind,
        subject_type="tenant",
        subject_id=tenant.slug,
        params=params,
        created_by=request.user,
    )


def active_job(tenant: Tenant) -> Job | None:
    return Job.objects.filter(
        subject_type="tenant",
        subject_id=tenant.slug,
        status__in=[JobStatus.QUEUED, JobStatus.RUNNING],
    ).first()


def tenant_for_token(token: str) -> Tenant | None:
    return Tenant.objects.filter(onboarding_token=token).first() if token else None


def tenant_onboard(*, form: TenantOnboardForm, request: HttpRequest) -> tuple[Tenant, Job]:
    """Create the tenant and its provisioning job. A repeated submit of the same form (same
    token) returns the tenant the first submit created."""
    token = form.cleaned_data.get("form_token") or ""
    existing = tenant_for_token(token)
    if existing is not None:
        return existing, _latest_job(existing)
    tenant = form.build_tenant()
    tenant.created_by = request.user
    tenant.onboarding_token = token
    tenant.status = TenantStatus.PROVISIONING
    secret_values = form.cleaned_data["secret_env_text"]
    try:
        with transaction.atomic():
            tenant.save()
            if secret_values:
                # In the tenant's own AWS account, as every job on it runs.
                with aws_account(tenant.aws_account):
                    write_env_secret(tenant, set_values=secret_values, remove=[])
            restore_from = (form.cleaned_data.get("restore_from") or "").strip()
            extra = (
                {"restore": {"s3_uri": restore_from, "mode": form.cleaned_data["restore_mode"]}}
                if restore_from
                else {}
            )
            job = _job(
                tenant, "tenant_provision", request, generation=tenant.config_generation, **extra
            )
            audit_record(
                request=request,
                action="tenant.onboard",
                obj=tenant,
                isolation=tenant.isolation,
                region=tenant.region,
                release=tenant.desired_release or "newest",
                secret_names=tenant.secret_env_names,
            )
    except IntegrityError:
        existing = tenant_for_token(token)
        if existing is None:
            raise
        return existing, _latest_job(existing)
    return tenant, job


def _latest_job(tenant: Tenant) -> Job:
    return Job.objects.filter(subject_type="tenant", subject_id=tenant.slug).first()


def tenant_update_config(*, tenant: Tenant, form: TenantConfigForm, request: HttpRequest) -> Job:
    """Save the new desired configuration, write secret values, and reconcile."""
    _require(tenant, TenantStatus.ACTIVE, TenantStatus.SUSPENDED, TenantStatus.FAILED)
    before = {f: getattr(tenant, f) for f in form.changed_data if hasattr(tenant, f)}
    set_values = form.cleaned_data["secret_env_text"]
    remove = form.cleaned_data["remove_secret_env"]
    with transaction.atomic():
        tenant = form.save(commit=False)
        tenant.env_vars = form.cleaned_data["env_vars_text"]
        tenant.app_overrides = form.cleaned_data["app_overrides_text"]
        tenant.function_in_vpc = not form.cleaned_data["outside_vpc"]
        tenant.secret_env_names = sorted(
            (set(tenant.secret_env_names) | set(set_values)) - set(remove)
        )
        tenant.config_generation += 1
        tenant.save()
        if set_values or remove:
            with aws_account(tenant.aws_account):
                write_env_secret(tenant, set_values=set_values, remove=remove)
        job = _job(tenant, "tenant_reconcile", request, generation=tenant.config_generation)
        audit_record(
            request=request,
            action="tenant.configure",
            obj=tenant,
            changed=sorted(form.changed_data),
            before={k: str(v) for k, v in before.items()},
            secrets_set=sorted(set_values),
            secrets_removed=sorted(remove),
        )
    return job


def tenant_repair(*, tenant: Tenant, request: HttpRequest) -> Job:
    _require(
        tenant,
        TenantStatus.ACTIVE,
        TenantStatus.SUSPENDED,
        TenantStatus.FAILED,
        TenantStatus.PROVISIONING,
    )
    with transaction.atomic():
        job = _job(tenant, "tenant_reconcile", request, generation=tenant.config_generation)
        audit_record(request=request, action="tenant.repair", obj=tenant)
    return job


def tenant_rotate_password(*, tenant: Tenant, request: HttpRequest) -> Job:
    """A new database password, staged so that no reader is left with one the database
    does not know (tenants.credentials)."""
    from tenants.credentials import RotationRefused, rotate_password

    with transaction.atomic():
        try:
            job = rotate_password(tenant, created_by=request.user)
        except RotationRefused as exc:
            raise TenantActionError(str(exc)) from exc
        audit_record(request=request, action="tenant.rotate_password", obj=tenant)
    return job


def tenant_check_drift(*, tenant: Tenant, request: HttpRequest) -> Job:
    _require(tenant, TenantStatus.ACTIVE, TenantStatus.SUSPENDED, TenantStatus.FAILED)
    with transaction.atomic():
        job = _job(tenant, "tenant_drift_check", request)
        audit_record(request=request, action="tenant.drift_check", obj=tenant)
    return job


def tenants_check_drift_all() -> int:
    """Queue a drift check for every live tenant (the daily beat). One job per tenant at
    most: a check still queued or running is not doubled."""
    count = 0
    for slug in Tenant.objects.filter(
        status__in=[TenantStatus.ACTIVE, TenantStatus.SUSPENDED]
    ).values_list("slug", flat=True):
        with transaction.atomic():
            job_create(kind="tenant_drift_check", subject_type="tenant", subject_id=slug)
        count += 1
    return count


def tenant_suspend(*, tenant: Tenant, request: HttpRequest) -> Job:
    _require(tenant, TenantStatus.ACTIVE)
    with transaction.atomic():
        tenant.status = TenantStatus.SUSPENDED
        tenant.save(update_fields=["status", "updated_at"])
        job = _job(tenant, "tenant_suspend", request)
        audit_record(request=request, action="tenant.suspend", obj=tenant)
    return job


def tenant_resume(*, tenant: Tenant, request: HttpRequest) -> Job:
    _require(tenant, TenantStatus.SUSPENDED)
    with transaction.atomic():
        tenant.status = TenantStatus.ACTIVE
        tenant.save(update_fields=["status", "updated_at"])
        job = _job(tenant, "tenant_resume", request)
        audit_record(request=request, action="tenant.resume", obj=tenant)
    return job


def tenant_offboard(*, tenant: Tenant, confirm_slug: str, request: HttpRequest) -> Job:
    if confirm_slug.strip() != tenant.slug:
        raise TenantActionError(f"Type the slug {tenant.slug} to confirm.")
    _require(
        tenant,
        TenantStatus.ACTIVE,
        TenantStatus.SUSPENDED,
        TenantStatus.FAILED,
        TenantStatus.OFFBOARDING,
    )
    running = active_job(tenant)
    if running is not None and running.kind != "tenant_offboard":
        raise TenantActionError(f"{running} is still running; offboard once it has ended.")
    with transaction.atomic():
        tenant.status = TenantStatus.OFFBOARDING
        tenant.save(update_fields=["status", "updated_at"])
        job = _job(tenant, "tenant_offboard", request)
        audit_record(request=request, action="tenant.offboard", obj=tenant)
    return job


def _require(tenant: Tenant, *statuses: str) -> None:
    if tenant.status not in statuses:
        raise TenantActionError(
            f"{tenant.slug} is {tenant.get_status_display().lower()}: this needs it to be "
            + " or ".join(TenantStatus(s).label.lower() for s in statuses)
            + "."
        )

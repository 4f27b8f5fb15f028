"""The tenant job kinds: provision, reconcile (repair and config changes), suspend and
resume, drift check, offboard. Each is an ordered list of idempotent steps.
"""

from __future__ import annotations

from django.utils import timezone

from opsconsole.jobs.models import Job, JobStatus
from opsconsole.jobs.registry import StepWait, register_job_kind
from opsconsole.webhooks import events as webhook_events
from opsconsole.webhooks.services import emit
from tenants import credentials, drift, notifications, restore  # noqa: F401 - register their jobs
from tenants.attachments import step_attachments, step_delete_attachments
from tenants.models import Tenant, TenantStatus
from tenants.provisioning import database
from tenants.provisioning.alarm_topic import step_alarm_topic, step_delete_alarm_topic
from tenants.provisioning.alarms import step_alarms, step_delete_alarms
from tenants.provisioning.api import step_api, step_delete_api
from tenants.provisioning.common import tenant_of
from tenants.provisioning.env_secret import step_env_secret
from tenants.provisioning.function import apply_concurrency, step_delete_function, step_function
from tenants.provisioning.identity import step_delete_role, step_role
from tenants.provisioning.log_group import step_log_group
from tenants.provisioning.network import step_network
from tenants.provisioning.release import step_schema, step_verify

PROVISION_STEPS = [
    ("network", "Network: subnets and security groups", step_network),
    ("attachments", "Security-group rules for attached services", step_attachments),
    ("database", "Database", database.step_database),
    ("secret", "Database secret", database.step_secret),
    ("env_secret", "Secret environment variables", step_env_secret),
    ("role", "IAM role (least privilege)", step_role),
    ("log_group", "Log group", step_log_group),
    ("function", "Function, version and alias 'live'", step_function),
    ("schema", "Database schema of the release", step_schema),
    ("api", "HTTP API", step_api),
    ("alarm_topic", "Alarm topic and who it notifies", step_alarm_topic),
    ("alarms", "Alarms", step_alarms),
    ("verify", "Verify: the release's health route", step_verify),
]


def step_no_job_half_done(job: Job, step) -> dict:
    """Wait while another job of this tenant is half-way through its steps and paused
    between two of them (a deployment waiting out throttles or an unreachable AWS): its
    lease is free then, but its work is not done, and the two pipelines must not
    interleave. A repair in such a gap re-created the function at the release the
    deployment was still checking and put it live unchecked; the deployment then failed
    and pointed the tenant back at the release it came from, which no longer ran there,
    so the tenant drifted right after its repair."""
    if not job.lock_key:
        return {}
    paused = (
        Job.objects.filter(lock_key=job.lock_key, status=JobStatus.QUEUED, started_at__isnull=False)
        .exclude(pk=job.pk)
        .order_by("pk")
        .first()
    )
    if paused is not None:
        raise StepWait(f"Waiting for {paused} to end: it is half-way through.", retry_in=5)
    # A deployment queued and not yet started counts too: the rollout has set the tenant's
    # desired release already, and a repair now would put that unchecked release live.
    deploying = (
        Job.objects.filter(lock_key=job.lock_key, kind__in=_DEPLOY_KINDS, status=JobStatus.QUEUED)
        .exclude(pk=job.pk)
        .order_by("pk")
        .first()
    )
    if deploying is not None:
        raise StepWait(
            f"Waiting for {deploying} to run first: its release is not checked yet.", retry_in=5
        )
    return {}


# Jobs that put a release on a tenant (deployments app; named here, not imported).
_DEPLOY_KINDS = ("tenant_deploy", "tenant_alias_back")


# A repair runs the provisioning steps once nothing else is half-done on the tenant.
RECONCILE_STEPS = [
    ("no_job_half_done", "No other job of the tenant half-done", step_no_job_half_done),
    *PROVISION_STEPS,
]


def _provisioned(job: Job) -> None:
    tenant = tenant_of(job)
    updates = {
        "current_release": tenant.desired_release,
        "applied_generation": job.params.get("generation", tenant.config_generation),
        "status_reason": "",
        "updated_at": timezone.now(),
    }
    onboarded = tenant.status in (TenantStatus.PROVISIONING, TenantStatus.FAILED)
    if onboarded:
        updates["status"] = TenantStatus.ACTIVE
    Tenant.objects.filter(pk=tenant.pk).update(**updates)
    if onboarded:
        payload = webhook_events.tenant_payload(tenant, status=TenantStatus.ACTIVE, job_id=job.pk)
        emit(webhook_events.TENANT_ONBOARDED, payload)
        _restore_asked(job)


def _restore_asked(job: Job) -> None:
    """The dump the onboarding form named, restored now that the database is up."""
    asked = job.params.get("restore")
    if not asked:
        return
    tenant = Tenant.objects.get(slug=job.subject_id)
    try:
        restore.restore_start(
            tenant,
            mode=asked["mode"] or "replace",
            s3_uri=asked["s3_uri"],
            created_by=job.created_by,
        )
    except restore.RestoreRefused as exc:
        # The stack is up; the person restores by hand from the tenant's page.
        Tenant.objects.filter(pk=tenant.pk).update(
            status_reason=f"The restore asked at onboarding did not start: {exc}"[:255]
        )


def _provision_failed(job: Job) -> None:
    tenant = tenant_of(job)
    updates = {"status_reason": job.error[:255], "updated_at": timezone.now()}
    failed = tenant.status == TenantStatus.PROVISIONING
    if failed:
        updates["status"] = TenantStatus.FAILED
    Tenant.objects.filter(pk=tenant.pk).update(**updates)
    if failed:
        payload = webhook_events.tenant_payload(
            tenant, status=TenantStatus.FAILED, reason=job.error, job_id=job.pk
        )
        emit(webhook_events.TENANT_FAILED, payload)


def _step_concurrency(job, step) -> dict:
    from opsconsole.aws import lambda_
    from tenants import naming

    tenant = tenant_of(job)
    name = naming.function_name(tenant.slug)
    current = lambda_.get_function(name=name, region=tenant.region)
    if current is None:
        raise RuntimeError(f"Function {name} is missing: run Repair first.")
    have = current.get("Concurrency", {}).get("ReservedConcurrentExecutions")
    apply_concurrency(tenant, name, have)
    wanted = 0 if tenant.status == TenantStatus.SUSPENDED else tenant.reserved_concurrency
    return {"reserved_concurrency": "unreserved" if wanted is None else wanted}


def _offboarded(job: Job) -> None:
    Tenant.objects.filter(slug=job.subject_id).update(
        status=TenantStatus.OFFBOARDED,
        offboarded_at=timezone.now(),
        status_reason="",
        endpoint_url="",
    )


def _offboard_failed(job: Job) -> None:
    Tenant.objects.filter(slug=job.subject_id).update(status_reason=job.error[:255])


register_job_kind(
    "tenant_provision",
    label="Onboard tenant",
    steps=PROVISION_STEPS,
    on_success=_provisioned,
    on_failure=_provision_failed,
)
register_job_kind(
    "tenant_reconcile",
    label="Reconcile tenant",
    steps=RECONCILE_STEPS,
    on_success=_provisioned,
    on_failure=_provision_failed,
)
register_job_kind(
    "tenant_suspend",
    label="Suspend tenant",
    steps=[("concurrency", "Reserved concurrency 0", _step_concurrency)],
)
register_job_kind(
    "tenant_resume",
    label="Resume tenant",
    steps=[("concurrency", "Restore reserved concurrency", _step_concurrency)],
)
register_job_kind(
    "tenant_drift_check",
    label="Check drift",
    steps=[("compare", "Compare AWS with the desired state", drift.step_compare)],
)
register_job_kind(
    "tenant_offboard",
    label="Offboard tenant",
    steps=[
        ("final_backup", "Final snapshot or dump", database.step_final_backup),
        ("function", "Delete the function", step_delete_function),
        ("api", "Delete the HTTP API", step_delete_api),
        ("alarms", "Delete the alarms", step_delete_alarms),
        ("alarm_topic", "Delete the tenant's alarm topic", step_delete_alarm_topic),
        ("role", "Delete the IAM role", step_delete_role),
        ("database", "Delete the database", database.step_delete_database),
        ("secret", "Schedule the secrets' deletion", database.step_delete_secret),
        # Last: the deleted function's network interfaces hold the group for minutes.
        ("attachments", "Remove attached services' rules and the group", step_delete_attachments),
    ],
    on_success=_offboarded,
    on_failure=_offboard_failed,
)

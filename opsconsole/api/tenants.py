"""Tenants: list with status, release and health; get; onboard (the onboarding form's
validation and plan: ``dry_run`` shows the plan, creates nothing); edit; suspend; resume;
repair; offboard; drift; restore a pg_dump. A scoped token sees only its tenants; the others
are 404."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from django.db import transaction
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from opsconsole.accounts.models import Role
from opsconsole.api.auth import audit, require
from opsconsole.api.errors import ApiError, form_refused, refused
from opsconsole.api.jobs import JobOut, job_out
from opsconsole.api.schemas import answers
from opsconsole.aws.errors import AwsError
from opsconsole.jobs.models import Job
from tenants import restore, services
from tenants.health.fleet import fleet_table
from tenants.health.fleet_store import fleet_watch
from tenants.models import TenantStatus
from tenants.onboarding import OnboardingInputError, config_form, onboard_form, onboarding_plan
from tenants.scope import user_is_scoped, visible_tenant_or_404, visible_tenants

router = Router(tags=["tenants"])


class TenantOut(Schema):
    slug: str
    name: str
    status: str
    status_reason: str
    region: str
    aws_account: str | None = Field(
        description="The AWS account its stack lives in (a name from the AWS accounts "
        "page); null: the console's own."
    )
    ring: int
    isolation: str
    tags: dict[str, str]
    desired_release: str
    current_release: str
    endpoint_url: str
    custom_domain: str
    needs_reconcile: bool
    created_at: datetime

    @staticmethod
    def resolve_needs_reconcile(obj) -> bool:
        return obj.applied_generation < obj.config_generation

    @staticmethod
    def resolve_aws_account(obj) -> str | None:
        return obj.aws_account.name if obj.aws_account_id else None


class TenantDetailOut(TenantOut):
    contact_email: str
    env_vars: dict[str, str]
    secret_env_names: list[str]
    app_overrides: dict
    function_in_vpc: bool
    lambda_memory_mb: int | None
    lambda_timeout_s: int | None
    log_retention_days: int | None
    alarm_topic: str
    resources: list[dict]

    @staticmethod
    def resolve_resources(obj) -> list[dict]:
        return [
            {"kind": r.kind, "name": r.name, "arn": r.arn, "status": r.status}
            for r in obj.resources.all()
        ]


class FleetRowOut(Schema):
    slug: str
    name: str
    status: str
    region: str
    ring: int
    current_release: str
    desired_release: str
    health: str = Field(description="healthy, degraded, down or unknown")
    health_reason: str
    invocations_1h: float | None
    error_rate_1h: float | None
    p95_ms_1h: float | None


class FleetPageOut(Schema):
    items: list[FleetRowOut]
    count: int
    notes: list[str]


class _Changeable(Schema):
    """What may change after onboarding too (the tenant's configuration form)."""

    model_config = {"extra": "forbid"}
    ring: int | None = Field(None, ge=0, description="0: canary; rollouts go ring by ring.")
    lambda_memory_mb: int | None = Field(None, description="Empty: the release's.")
    lambda_timeout_s: int | None = None
    reserved_concurrency: int | None = None
    log_retention_days: int | None = None
    alarm_topic: Literal["none", "tenant", "fleet"] | None = None
    db_engine_version: str | None = None
    db_multi_az: bool | None = None
    db_backup_window: str | None = Field(None, description='UTC, e.g. "03:00-04:00".')
    db_maintenance_window: str | None = Field(None, description='e.g. "mon:04:00-mon:05:00".')
    serverless_seconds_until_auto_pause: int | None = None
    expected_requests_month: int | None = None
    expected_duration_ms: int | None = None
    outside_vpc: bool | None = Field(
        None, description="Only for isolation none without attachments: no NAT needed."
    )
    env_vars: dict[str, str] | None = None
    app_overrides: dict | None = Field(None, description="See docs/app-contract.md.")


class OnboardIn(_Changeable):
    """The onboarding form's fields; omitted ones take the form's defaults."""

    name: str
    slug: str = Field(description="Lowercase, digits, single hyphens; at most 40; permanent.")
    contact_email: str | None = None
    region: str | None = None
    aws_account: str | None = Field(
        None,
        description="The name of a registered AWS account that lists the region; null: the "
        "console's own. It cannot change later.",
    )
    release: str | None = Field(None, description="Default: the release new tenants start on.")
    isolation: Literal["shared", "dedicated", "serverless", "none"] | None = None
    db_instance_class: str | None = None
    db_allocated_storage_gb: int | None = None
    db_backup_retention_days: int | None = None
    db_storage_encrypted: bool | None = None
    db_deletion_protection: bool | None = None
    serverless_min_acu: Decimal | None = None
    serverless_max_acu: Decimal | None = None
    use_rds_proxy: bool | None = None
    custom_domain: str | None = None
    certificate_arn: str | None = None
    secret_env: dict[str, str] | None = Field(
        None, description="Written to Secrets Manager only; never stored or returned."
    )
    tags: dict[str, str] | None = None
    restore_from: str | None = Field(
        None,
        description="s3://bucket/key of a pg_dump restored into the new database once the "
        "stack is up (a tenant_restore job of its own).",
    )
    restore_mode: Literal["replace", "data-only"] | None = None
    dry_run: bool = Field(False, description="Validate and return the plan; create nothing.")


class ConfigIn(_Changeable):
    """The configuration form's fields; omitted ones keep their value."""

    secret_env: dict[str, str] | None = Field(None, description="Set or replace these secrets.")
    remove_secret_env: list[str] | None = None


class PlanOut(Schema):
    release: str | None
    resources: list[dict[str, str]]
    sections: list[dict[str, Any]]
    cost: list[dict[str, Any]]
    monthly_usd: Decimal


class OnboardOut(Schema):
    tenant: TenantDetailOut | None
    job: JobOut | None
    plan: PlanOut


class ActionOut(Schema):
    tenant: TenantOut
    job: JobOut


class OffboardIn(Schema):
    confirm: str = Field(description="The tenant's slug, typed again.")


class DriftOut(Schema):
    checked_at: datetime | None
    status: str = Field(description="never, queued, running, succeeded or failed")
    drift: Any
    job: JobOut | None


def _plan_out(tenant) -> dict:
    found = onboarding_plan(tenant)
    return {
        "release": getattr(found.release, "version", None),
        "resources": [{"kind": p.kind, "name": p.name, "note": p.note} for p in found.planned],
        "sections": [
            {"title": s.title, "rows": [list(r) for r in s.rows], "warnings": s.warnings}
            for s in found.sections
        ],
        "cost": [
            {"item": c.item, "monthly_usd": c.monthly_usd, "basis": c.basis}
            for c in found.cost_lines
        ],
        "monthly_usd": found.total,
    }


def _tenant(request: HttpRequest, slug: str):
    return visible_tenant_or_404(request.user, slug=slug)


def _values(body: Schema, *drop: str) -> dict[str, Any]:
    return {k: v for k, v in body.dict(exclude_unset=True).items() if k not in drop}


@router.get("/", response=answers({200: FleetPageOut}))
def tenant_list(
    request: HttpRequest,
    status: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
):
    """Tenants (not offboarded unless ``status`` asks) with release and last-hour health."""
    qs = visible_tenants(request.user)
    qs = qs.filter(status=status) if status else qs.exclude(status=TenantStatus.OFFBOARDED)
    table = fleet_table(qs.order_by("slug"))
    rows = table[offset : offset + limit]
    # Watched as the page's rows are: a script reading the API gets the numbers too (the
    # worker fetches only what someone looked at, in the browser or here).
    fleet_watch([row.slug for row in rows])
    return {
        "count": len(table),
        "notes": table.notes,
        "items": [
            {
                "slug": r.slug,
                "name": r.name,
                "status": r.status,
                "region": r.region,
                "ring": r.ring,
                "current_release": r.current_release,
                "desired_release": r.desired_release,
                "health": r.health,
                "health_reason": r.health_reason,
                "invocations_1h": r.invocations,
                "error_rate_1h": r.error_rate,
                "p95_ms_1h": r.p95_ms,
            }
            for r in rows
        ],
    }


@router.get("/{slug}", response=answers({200: TenantDetailOut}))
def tenant_get(request: HttpRequest, slug: str):
    return _tenant(request, slug)


@router.post("/", response=answers({200: OnboardOut, 201: OnboardOut}, 400, 403, 502))
def tenant_onboard(request: HttpRequest, body: OnboardIn):
    """Onboard a tenant: validated as the onboarding form is; answers with the plan and
    the provisioning job (follow it at ``/api/v1/jobs/{id}``)."""
    require(request, Role.ADMIN)
    if user_is_scoped(request.user):
        raise ApiError(403, "A token limited to some tenants cannot onboard new ones.")
    try:
        form = onboard_form(_values(body, "dry_run"))
    except OnboardingInputError as exc:
        raise refused([f"{f}: {m}" for f, m in exc.problems]) from exc
    if not form.is_valid():
        raise form_refused(form)
    tenant = form.build_tenant()
    planned = _plan_out(tenant)
    if body.dry_run:
        return Status(200, {"tenant": None, "job": None, "plan": planned})
    try:
        tenant, job = services.tenant_onboard(form=form, request=request)
    except AwsError as exc:
        raise ApiError(
            502, f"AWS refused the secret variables; nothing was created: {exc}"
        ) from exc
    return Status(201, {"tenant": tenant, "job": job_out(job), "plan": planned})


@router.patch("/{slug}", response=answers({200: ActionOut}, 400, 403, 409, 502))
def tenant_edit(request: HttpRequest, slug: str, body: ConfigIn):
    """Change the configuration; a reconcile job applies it."""
    tenant = _tenant(request, slug)
    require(request, Role.ADMIN)
    try:
        form = config_form(tenant, _values(body))
    except OnboardingInputError as exc:
        raise refused([f"{f}: {m}" for f, m in exc.problems]) from exc
    if not form.is_valid():
        raise form_refused(form)
    try:
        job = services.tenant_update_config(tenant=tenant, form=form, request=request)
    except services.TenantActionError as exc:
        raise ApiError(409, str(exc)) from exc
    tenant.refresh_from_db()
    return {"tenant": tenant, "job": job_out(job)}


def _action(request: HttpRequest, slug: str, role: str, action, **kwargs) -> dict:
    # Found first: a tenant the token may not see is 404, before any 403 could confirm it.
    tenant = _tenant(request, slug)
    require(request, role)
    try:
        job = action(tenant=tenant, request=request, **kwargs)
    except services.TenantActionError as exc:
        raise ApiError(409, str(exc)) from exc
    tenant.refresh_from_db()
    return {"tenant": tenant, "job": job_out(job)}


_ACTION_RESPONSES = answers({200: ActionOut}, 403, 409)


@router.post("/{slug}/suspend", response=_ACTION_RESPONSES)
def tenant_suspend(request: HttpRequest, slug: str):
    """Take the tenant's API offline (its function's concurrency goes to 0)."""
    return _action(request, slug, Role.OPERATOR, services.tenant_suspend)


@router.post("/{slug}/resume", response=_ACTION_RESPONSES)
def tenant_resume(request: HttpRequest, slug: str):
    return _action(request, slug, Role.OPERATOR, services.tenant_resume)


@router.post("/{slug}/repair", response=_ACTION_RESPONSES)
def tenant_repair(request: HttpRequest, slug: str):
    """Re-apply the tenant's whole configuration, recreating what is missing."""
    return _action(request, slug, Role.OPERATOR, services.tenant_repair)


@router.post("/{slug}/rotate-password", response=_ACTION_RESPONSES)
def tenant_rotate_password(request: HttpRequest, slug: str):
    """A new database password: staged in the tenant's secret, given to the database, made
    current, then the function's variables rebuilt (admin)."""
    return _action(request, slug, Role.ADMIN, services.tenant_rotate_password)


@router.post("/{slug}/offboard", response=answers({200: ActionOut}, 400, 403, 409))
def tenant_offboard(request: HttpRequest, slug: str, body: OffboardIn):
    """Delete the tenant's stack (a final backup first, as the page does)."""
    tenant = _tenant(request, slug)
    if body.confirm.strip() != tenant.slug:
        raise refused([f"confirm: type the slug {tenant.slug} to confirm"])
    return _action(request, slug, Role.ADMIN, services.tenant_offboard, confirm_slug=body.confirm)


class RestoreIn(Schema):
    s3_uri: str = Field(
        description="s3://bucket/key of a pg_dump (custom format or plain SQL, gzipped or "
        "not), readable in the tenant's account."
    )
    mode: Literal["replace", "data-only", "as-is"] = Field(
        "replace",
        description="replace: the dump's tables, views, sequences, types and functions are "
        "dropped first; data-only: rows into the tables the migrations made; as-is: a plain "
        "dump runs as written.",
    )
    confirm: str = Field(description="The tenant's slug, typed again.")


@router.post("/{slug}/restore", response=answers({202: ActionOut}, 400, 403, 409))
def tenant_restore(request: HttpRequest, slug: str, body: RestoreIn):
    """Restore a pg_dump into the tenant's database as its own role, as a job (admin);
    the job's steps report progress and the first error in PostgreSQL's words."""
    tenant = _tenant(request, slug)
    require(request, Role.ADMIN)
    if body.confirm.strip() != tenant.slug:
        raise refused([f"confirm: type the slug {tenant.slug} to confirm"])
    try:
        job = restore.restore_start(
            tenant, mode=body.mode, s3_uri=body.s3_uri, created_by=request.user
        )
    except restore.RestoreRefused as exc:
        raise refused([str(exc)]) from exc
    audit(request, "tenant.restore", tenant, job=job.pk, source=body.s3_uri, mode=body.mode)
    return Status(202, {"tenant": tenant, "job": job_out(job)})


def _last_drift(tenant) -> Job | None:
    return (
        Job.objects.filter(subject_type="tenant", subject_id=tenant.slug, kind="tenant_drift_check")
        .prefetch_related("steps")
        .first()
    )


def _drift_out(job: Job | None) -> dict:
    if job is None:
        return {"checked_at": None, "status": "never", "drift": None, "job": None}
    steps = list(job.steps.all())
    output = steps[0].output if steps and job.status == "succeeded" else None
    return {
        "checked_at": job.finished_at,
        "status": job.status,
        "drift": output,
        "job": job_out(job),
    }


@router.get("/{slug}/drift", response=answers({200: DriftOut}))
def tenant_drift(request: HttpRequest, slug: str):
    """The last drift check's findings (queue a new one with POST)."""
    return _drift_out(_last_drift(_tenant(request, slug)))


@router.post("/{slug}/drift", response=answers({202: DriftOut}, 403, 409))
def tenant_drift_check(request: HttpRequest, slug: str):
    """Compare the tenant's AWS resources with its spec, in a job."""
    tenant = _tenant(request, slug)
    require(request, Role.OPERATOR)
    try:
        with transaction.atomic():
            services.tenant_check_drift(tenant=tenant, request=request)
    except services.TenantActionError as exc:
        raise ApiError(409, str(exc)) from exc
    return Status(202, _drift_out(_last_drift(tenant)))

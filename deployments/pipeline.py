"""Putting a release on one tenant: the ``tenant_deploy`` job (one per Deployment row).

Steps: make the artifact present in the tenant's region; update the function's
configuration and code and wait for ``function_updated_v2``; migrate the database; publish
a version with the expected CodeSha256; move the ``live`` alias (at once, or a weighted
canary first); verify (alarm states and a health invoke). Every step is idempotent.

On failure the alias goes back to the version it had before (``from_version``) and the
deployment is failed with the error; the rollout's threshold decides what happens next.

Every Lambda control-plane call here takes a token from the shared rate budget first
(``opsconsole.aws.rate_budget``); GetFunction (100 requests/s, a separate limit) does not.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments.models import Deployment, DeploymentStatus, Rollout, Traffic
from opsconsole.aws import cloudwatch, lambda_
from opsconsole.aws.errors import AwsError
from opsconsole.aws.rate_budget import BudgetTimeout, RateBudget, lambda_budget
from opsconsole.jobs.models import Job
from opsconsole.jobs.registry import StepWait, register_job_kind
from tenants import naming, release_source
from tenants.models import Tenant
from tenants.provisioning import function as fn
from tenants.provisioning.alarms import alarm_specs
from tenants.provisioning.release import health_check
from tenants.release_source import ReleaseArtifact

logger = logging.getLogger(__name__)

JOB_KIND = "tenant_deploy"


# --- the rate budget in front of Lambda's control plane -------------------------------


@functools.cache
def _budget(region: str, rate: float, burst: float, url: str) -> RateBudget:
    return lambda_budget(region=region)


def budget_for(region: str) -> RateBudget:
    """The shared Lambda control-plane budget of ``region`` (tests replace this)."""
    return _budget(
        region,
        settings.LAMBDA_CONTROL_RATE,
        settings.LAMBDA_CONTROL_BURST,
        settings.RATE_BUDGET_REDIS_URL,
    )


def control(region: str) -> None:
    """Take one Lambda control-plane token, or give the worker back if none comes soon."""
    try:
        budget_for(region).take(timeout_s=settings.LAMBDA_BUDGET_WAIT_S)
    except BudgetTimeout as exc:
        raise StepWait("waiting for Lambda's rate budget", retry_in=5) from exc


# --- helpers ---------------------------------------------------------------------------


_CACHE_ATTR = "_tenant_deploy_deployment"


def deployment_of(job: Job) -> Deployment:
    """The job's Deployment (with its rollout, release and tenant), loaded once per run.

    ``job_execute`` loads a fresh Job for every run, so the row is read once per run rather
    than once per step; the steps change it only through ``_update``, which keeps the
    loaded copy in step with the row.
    """
    cached = job.__dict__.get(_CACHE_ATTR)
    if cached is not None and cached.pk == job.params["deployment_id"]:
        return cached
    deployment = Deployment.objects.select_related("rollout__release", "tenant").get(
        pk=job.params["deployment_id"]
    )
    job.__dict__[_CACHE_ATTR] = deployment
    return deployment


def _update(deployment: Deployment, **fields: Any) -> None:
    """Write ``fields`` to the row and to the loaded copy."""
    Deployment.objects.filter(pk=deployment.pk).update(**fields)
    for name, value in fields.items():
        setattr(deployment, name, value)


def _note(deployment: Deployment, step: str) -> None:
    if deployment.step != step:
        _update(deployment, step=step)


def artifact_for(deployment: Deployment) -> ReleaseArtifact:
    """The release's artifact for the tenant's region (resolved once per loaded row)."""
    cached = deployment.__dict__.get("_artifact")
    if cached is None:
        cached = deployment.__dict__["_artifact"] = _artifact_for(deployment)
    return cached


def _artifact_for(deployment: Deployment) -> ReleaseArtifact:
    tenant = deployment.tenant
    artifact = release_source.get().artifact(
        deployment.rollout.release.version, region=tenant.region
    )
    if artifact.package_type == "Image" and tenant.region != settings.AWS_REGION:
        from deployments.artifacts import regional_image_uri

        return _replace(artifact, image_uri=regional_image_uri(artifact.image_uri, tenant.region))
    if artifact.package_type == "Zip" and tenant.region != settings.AWS_REGION:
        from deployments.artifacts import regional_bucket

        return _replace(artifact, s3_bucket=regional_bucket(tenant.region))
    return artifact


def _replace(artifact: ReleaseArtifact, **changes: Any) -> ReleaseArtifact:
    import dataclasses

    return dataclasses.replace(artifact, **changes)


def _settled(name: str, region: str, *, retry_in: int) -> None:
    """Carry on if the function's last update is done, else give the worker back.

    A real update stays InProgress for seconds: sitting in a waiter would hold a worker
    per deployment, so the step re-queues itself (StepWait) and re-checks from the top.
    """
    current = lambda_.get_function(name=name, region=region) or {}
    configuration = current.get("Configuration", {})
    status = configuration.get("LastUpdateStatus")
    if status == "InProgress" or configuration.get("State") == "Pending":
        raise StepWait("waiting for Lambda to finish the update", retry_in=retry_in)
    if status == "Failed":
        raise RuntimeError(
            f"Lambda could not apply the update: {configuration.get('LastUpdateStatusReason')}"
        )


def _live_version(name: str, region: str) -> str:
    """The version the alias serves, through GetFunction (outside the 15/s budget)."""
    try:
        current = lambda_.get_function_at(name=name, qualifier=naming.ALIAS, region=region)
    except AwsError:
        return ""
    return (current or {}).get("Configuration", {}).get("Version", "")


# --- steps -----------------------------------------------------------------------------


def step_artifact(job: Job, step) -> dict:
    deployment = deployment_of(job)
    _note(deployment, "artifact")
    from deployments.artifacts import ensure_artifact_in_region

    return ensure_artifact_in_region(deployment.rollout.release, region=deployment.tenant.region)


def step_code(job: Job, step) -> dict:
    deployment = deployment_of(job)
    _note(deployment, "code")
    tenant = deployment.tenant
    name, region = naming.function_name(tenant.slug), tenant.region
    existing = lambda_.get_function(name=name, region=region)
    if existing is None:
        raise RuntimeError(f"Function {name} does not exist: repair the tenant first.")
    if not deployment.from_version:
        previous = _live_version(name, region)
        _update(deployment, from_version=previous, from_release=tenant.current_release)
    artifact = artifact_for(deployment)
    configuration = existing["Configuration"]
    if configuration.get("LastUpdateStatus") == "InProgress":
        raise StepWait("waiting for an earlier update to finish", retry_in=2)
    # One change per pass: Lambda refuses a second update while one is in progress. The
    # step runs again after each (StepWait) and finds what is left to do.
    changes = fn._config_changes(configuration, fn.desired_configuration(tenant, artifact))
    if changes:
        control(region)
        lambda_.update_configuration(name=name, changes=changes, region=region)
        _settled(name, region, retry_in=settings.DEPLOY_UPDATE_POLL_S)
        existing = lambda_.get_function(name=name, region=region) or existing
        configuration = existing["Configuration"]
    if not fn.code_matches(configuration, existing.get("Code", {}), artifact):
        control(region)
        lambda_.update_code(name=name, code=fn.code_argument(artifact), region=region)
        _settled(name, region, retry_in=settings.DEPLOY_UPDATE_POLL_S)
    return {"code": "the release's code and configuration are in place"}


def step_schema(job: Job, step) -> dict:
    deployment = deployment_of(job)
    _note(deployment, "schema")

    def on_status(text: str) -> None:
        step.detail = text[:255]
        step.save(update_fields=["detail"])

    return release_source.get().apply_schema(
        tenant=deployment.tenant, version=deployment.rollout.release.version, on_status=on_status
    )


def step_publish(job: Job, step) -> dict:
    deployment = deployment_of(job)
    _note(deployment, "publish")
    tenant = deployment.tenant
    name, region = naming.function_name(tenant.slug), tenant.region
    artifact = artifact_for(deployment)
    current = lambda_.get_function(name=name, region=region) or {}
    configuration = current.get("Configuration", {})
    if not fn.code_matches(configuration, current.get("Code", {}), artifact):
        raise RuntimeError(
            f"{name} does not run the release's code (CodeSha256 "
            f"{configuration.get('CodeSha256')}, expected "
            f"{artifact.code_sha256 or artifact.image_uri})."
        )
    control(region)
    # PublishVersion with CodeSha256 fails if the code changed since we looked; when
    # nothing changed since the last publish AWS hands back that version (idempotent).
    published = lambda_.publish_version(
        name=name,
        code_sha256=configuration["CodeSha256"],
        description=f"release {deployment.rollout.release.version}",
        region=region,
    )
    _update(deployment, to_version=published["Version"])
    return {"function_version": published["Version"]}


def _alarms_firing(tenant: Tenant) -> list[str]:
    names = [spec["AlarmName"] for spec in alarm_specs(tenant)]
    states = cloudwatch.describe_alarms(names=names, region=tenant.region)
    return sorted(n for n, a in states.items() if a.get("StateValue") == "ALARM")


def step_traffic(job: Job, step) -> dict:
    deployment = deployment_of(job)
    _note(deployment, "traffic")
    tenant, rollout = deployment.tenant, deployment.rollout
    name, region = naming.function_name(tenant.slug), tenant.region
    new, old = deployment.to_version, deployment.from_version
    if rollout.traffic == Traffic.CANARY and old and old != new:
        if deployment.canary_started_at is None:
            control(region)
            lambda_.update_alias(
                function=name,
                alias=naming.ALIAS,
                version=old,
                weights={new: rollout.canary_percent / 100},
                region=region,
            )
            _update(deployment, canary_started_at=timezone.now())
            raise StepWait(
                f"canary: {rollout.canary_percent}% on version {new}",
                retry_in=min(30, rollout.canary_minutes * 60),
            )
        firing = _alarms_firing(tenant)
        if firing:
            raise RuntimeError(f"Canary aborted: alarm {', '.join(firing)} in ALARM.")
        elapsed = (timezone.now() - deployment.canary_started_at).total_seconds()
        remaining = rollout.canary_minutes * 60 - elapsed
        if remaining > 0:
            raise StepWait(
                f"canary: {rollout.canary_percent}% on version {new}, {remaining:.0f} s left",
                retry_in=int(min(30, max(1, remaining))),
            )
    control(region)
    alias = lambda_.update_alias(function=name, alias=naming.ALIAS, version=new, region=region)
    return {"alias": alias.get("AliasArn", ""), "version": new}


def step_verify(job: Job, step) -> dict:
    deployment = deployment_of(job)
    _note(deployment, "verify")
    tenant = deployment.tenant
    firing = _alarms_firing(tenant)
    if firing:
        raise RuntimeError(f"Alarm {', '.join(firing)} in ALARM after the alias moved.")
    ok, answer = health_check(tenant)
    if not ok:
        raise RuntimeError(f"Health invoke failed: {answer}")
    return {"health": answer}


# --- outcome ---------------------------------------------------------------------------


def _kick(rollout_id: int) -> None:
    from deployments.tasks import rollout_advance_task

    def send() -> None:
        try:
            rollout_advance_task.delay(rollout_id)
        except Exception:  # noqa: BLE001 - the beat entry advances it anyway
            logger.exception("Could not send rollout_advance for %s", rollout_id)

    transaction.on_commit(send)


def deployment_succeeded(job: Job) -> None:
    deployment = deployment_of(job)
    version = deployment.rollout.release.version
    with transaction.atomic():
        Deployment.objects.filter(pk=deployment.pk).update(
            status=DeploymentStatus.SUCCEEDED, step="done", finished_at=timezone.now(), reason=""
        )
        Tenant.objects.filter(pk=deployment.tenant_id).update(
            current_release=version, desired_release=version, updated_at=timezone.now()
        )
        _kick(deployment.rollout_id)


def revert_alias(deployment: Deployment) -> str:
    """Point ``live`` back at the version it served before this deployment."""
    tenant = deployment.tenant
    name, region = naming.function_name(tenant.slug), tenant.region
    if not deployment.from_version:
        return "nothing to revert (no earlier version recorded)"
    alias = lambda_.get_alias(function=name, alias=naming.ALIAS, region=region)
    weights = (alias or {}).get("RoutingConfig", {}).get("AdditionalVersionWeights")
    if alias and alias.get("FunctionVersion") == deployment.from_version and not weights:
        return f"alias already on version {deployment.from_version}"
    try:
        control(region)
    except StepWait:
        # Putting a failed tenant back comes before the budget; botocore's retries cover a
        # throttle here.
        logger.warning("No Lambda budget for the revert of %s: calling anyway", name)
    lambda_.update_alias(
        function=name, alias=naming.ALIAS, version=deployment.from_version, region=region
    )
    return f"alias reverted to version {deployment.from_version}"


def deployment_failed(job: Job) -> None:
    deployment = deployment_of(job)
    try:
        reverted = revert_alias(deployment)
    except Exception as exc:  # noqa: BLE001 - the failure is recorded, a person looks
        logger.exception("Alias revert failed for %s", deployment.tenant.slug)
        reverted = f"alias revert FAILED: {exc}"
    with transaction.atomic():
        Deployment.objects.filter(pk=deployment.pk).update(
            status=DeploymentStatus.FAILED,
            finished_at=timezone.now(),
            reason=f"{job.error} ({reverted})"[:2000],
        )
        # The tenant stays on what it ran: a reconcile must not push the failed release.
        Tenant.objects.filter(pk=deployment.tenant_id).update(
            desired_release=deployment.from_release or deployment.tenant.current_release
        )
        _kick(deployment.rollout_id)


DEPLOY_STEPS = [
    ("artifact", "Artifact present in the tenant's region", step_artifact),
    ("code", "Function code and configuration", step_code),
    ("schema", "Database migrations", step_schema),
    ("publish", "Publish a version (CodeSha256 checked)", step_publish),
    ("traffic", "Move the 'live' alias", step_traffic),
    ("verify", "Verify: alarms and health invoke", step_verify),
]

register_job_kind(
    JOB_KIND,
    label="Deploy release",
    steps=DEPLOY_STEPS,
    on_success=deployment_succeeded,
    on_failure=deployment_failed,
)


def rollout_of(deployment: Deployment) -> Rollout:
    return deployment.rollout

"""Putting a release on one tenant: the ``tenant_deploy`` job (one per Deployment row).

Steps: make the artifact present in the tenant's region; update the function's
configuration and code and wait for ``function_updated_v2``; migrate the database; publish
a version with the expected CodeSha256; send the release's health route to that version
(before any traffic reaches it, as CodeDeploy's pre-traffic hook does); move the ``live``
alias (at once, or a weighted canary first); verify: watch the tenant's alarms and error
rate through the deployment's part of the bake (``Rollout.watch_s``). Every step is
idempotent.

On failure the alias goes back to the version it had before (``from_version``), unless it
never moved (the health check failed), and the deployment is failed with the error; the
rollout's threshold decides what happens next.

What a deployment learns on the way (the version the alias served before, the version it
published) is its steps' output, saved with each step's end by the job runner; the
Deployment row gets it once, when the deployment ends. The rollout page reads the
running step from the job, so a step costs no write of its own here.

Every Lambda control-plane call here takes a token from the shared rate budget first
(``opsconsole.aws.rate_budget``); GetFunction (100 requests/s, a separate limit) and the
health check's Invoke (data plane) do not.
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from deployments import release_settings, watch
from deployments.models import Deployment, Rollout, Traffic
from opsconsole.aws import lambda_
from opsconsole.aws.errors import AwsError
from opsconsole.aws.rate_budget import (
    BudgetTimeout,
    BudgetUnavailable,
    RateBudget,
    lambda_budget,
)
from opsconsole.core import rows
from opsconsole.jobs.models import Job
from opsconsole.jobs.registry import StepTransient, StepWait, register_job_kind
from opsconsole.jobs.services import step_output
from tenants import naming, release_source
from tenants.provisioning import function as fn
from tenants.provisioning import health_check as health
from tenants.provisioning import identity
from tenants.release_source import ReleaseArtifact

logger = logging.getLogger(__name__)

JOB_KIND = "tenant_deploy"

# The verify step looks at the tenant this often while it watches (CloudWatch's metrics
# and alarms move by the minute).
WATCH_CHECK_S = 30
# A throttled health invoke never reached the app: try again for this long, then fail.
HEALTH_THROTTLE_PATIENCE_S = 120
# CloudWatch not answering at all: keep looking this long past the window, then fail.
ALARM_PATIENCE_S = 120

# The health check (tests and the rollout bench replace it).
health_check = health.check


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
    except BudgetUnavailable as exc:
        # The budget's Redis restarting is no reason to fail a deployment: the step runs
        # again once it answers (within the job's attempts), and no call went out.
        raise StepTransient(str(exc)) from exc


def control_call(region: str, fn, **kwargs: Any) -> Any:
    """A Lambda control-plane call with its token taken first.

    A throttle that gets through anyway (another client of the account, botocore's
    retries spent) re-queues the step instead of failing the deployment, and so does an
    update Lambda still has in progress: every step here can simply run again.
    """
    control(region)
    try:
        return fn(region=region, **kwargs)
    except AwsError as exc:
        if exc.throttled or exc.code == "ResourceConflictException":
            raise StepWait(f"Lambda answered {exc.code}: trying again", retry_in=2) from exc
        if exc.code == "PreconditionFailedException":
            # The function changed between our read and the update (RevisionId): read it
            # again rather than publish code we did not check.
            raise StepWait(
                "the function changed since it was read: reading it again", retry_in=1
            ) from exc
        raise


# --- helpers ---------------------------------------------------------------------------


_CACHE_ATTR = "_tenant_deploy_deployment"


def deployment_of(job: Job) -> Deployment:
    """The job's Deployment (with its rollout, release and tenant), loaded once per run.

    ``job_execute`` loads a fresh Job for every run, so the rows are read once per run
    rather than once per step; the steps change the deployment only through ``_update``,
    which keeps the loaded copy in step with the row. Deployment and tenant are read fresh
    (one plain SELECT: the tenant's settings may have been edited since the last run);
    the rollout and its release never change once the rollout starts, so a worker keeps
    them (``_rollout``).
    """
    cached = job.__dict__.get(_CACHE_ATTR)
    if cached is not None and cached.pk == job.params["deployment_id"]:
        return cached
    found = rows.fetch_with(Deployment, "tenant", "a.id = %s", [job.params["deployment_id"]])
    if not found:
        raise Deployment.DoesNotExist(f"Deployment {job.params['deployment_id']} is gone.")
    deployment = found[0]
    deployment.rollout = _rollout(deployment.rollout_id)
    job.__dict__[_CACHE_ATTR] = deployment
    return deployment


@functools.lru_cache(maxsize=256)
def _rollout(rollout_id: int) -> Rollout:
    """A rollout with its release. Its strategy and release are written once, when it
    starts (a release is immutable once deployed), so a copy per worker process is safe;
    its status is never read from here."""
    return Rollout.objects.select_related("release").get(pk=rollout_id)


def _update(deployment: Deployment, **fields: Any) -> None:
    """Write ``fields`` to the row and to the loaded copy."""
    Deployment.objects.filter(pk=deployment.pk).update(**fields)
    for name, value in fields.items():
        setattr(deployment, name, value)


def artifact_for(deployment: Deployment) -> ReleaseArtifact:
    """The release's artifact for the tenant's region (resolved once per loaded row)."""
    cached = deployment.__dict__.get("_artifact")
    if cached is None:
        cached = deployment.__dict__["_artifact"] = _artifact_for(deployment)
    return cached


def _artifact_for(deployment: Deployment) -> ReleaseArtifact:
    from deployments.tenant_release import located, release_artifact

    release = deployment.rollout.release
    return located(release_artifact(release), release, region=deployment.tenant.region)


def _busy(configuration: dict[str, Any], *, retry_in: int, since=None) -> None:
    """Carry on if the function's last update is done, else give the worker back.

    A real update stays InProgress for seconds: sitting in a waiter would hold a worker
    per deployment, so the step re-queues itself (StepWait) and re-checks from the top.
    ``configuration`` is what AWS just answered (GetFunction, or the update call itself,
    which reports the update it started), so no extra call is spent finding out. An update
    that failed after ``since`` (this step's start) is this deployment's failure; an
    older one is simply overwritten by the next update.
    """
    status = configuration.get("LastUpdateStatus")
    if status == "InProgress" or configuration.get("State") == "Pending":
        raise StepWait("waiting for Lambda to finish the update", retry_in=retry_in)
    if status == "Failed" and _modified_since(configuration, since):
        raise RuntimeError(
            f"Lambda could not apply the update: {configuration.get('LastUpdateStatusReason')}"
        )


def _modified_since(configuration: dict[str, Any], since) -> bool:
    """Whether Lambda's LastModified is after ``since`` (unknown counts as after)."""
    text = configuration.get("LastModified")
    if since is None or not text:
        return True
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z") >= since
    except ValueError:
        return True


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
    from deployments.artifacts import ensure_artifact_in_region

    return ensure_artifact_in_region(deployment.rollout.release, region=deployment.tenant.region)


def step_code(job: Job, step) -> dict:
    """The release's configuration, then its code, published as a version in the same call.

    ``UpdateFunctionCode`` with ``Publish`` and the ``RevisionId`` just read: one control
    call puts the code in place and publishes it, and AWS refuses it if anything changed
    the function since we looked (the step then reads it again). The answer is the new
    version, its ``CodeSha256`` checked against the release's here. A deployment whose
    settings are unchanged spends 2 control calls in all (this one and the alias), 3 when
    the configuration changes too. The update finishes in the background while the
    migrations run; the version step waits for it.
    """
    deployment = deployment_of(job)
    tenant = deployment.tenant
    name, region = naming.function_name(tenant.slug), tenant.region
    existing = lambda_.get_function(name=name, region=region)
    if existing is None:
        raise RuntimeError(f"Function {name} does not exist: repair the tenant first.")
    artifact = artifact_for(deployment)
    configuration = existing["Configuration"]
    _busy(configuration, retry_in=2, since=step.started_at)
    # The release's permissions and SSM parameters are granted (and checked) before the
    # code that needs them runs; IAM calls take nothing of Lambda's budget.
    identity.converge_policy(tenant, artifact.app_settings)
    # Its alarm rules too, so the canary's watch judges it by them (CloudWatch calls).
    stack = release_settings.apply_alarms(job, step, deployment)
    poll = settings.DEPLOY_UPDATE_POLL_S
    # One change per pass: Lambda refuses a second update while one is in progress. The
    # step runs again after the configuration update (StepWait) and finds what is left to
    # do. Configuration changes only when the release or the tenant's settings changed it.
    changes = fn._config_changes(configuration, fn.desired_configuration(tenant, artifact))
    if changes:
        configuration = control_call(
            region, lambda_.update_configuration, name=name, changes=changes
        )
        _busy(configuration, retry_in=poll, since=step.started_at)
    # The alias still serves what it served before this deployment: it moves only in the
    # traffic step, so this is the version to go back to on failure.
    out = {"from_version": _live_version(name, region)} | (
        {"alarms_written": stack["alarms"]["written"]} if stack else {}
    )
    if fn.code_matches(configuration, existing.get("Code", {}), artifact):
        # Already in place (this step ran before and its answer was lost, or the tenant
        # runs this code already): the version step publishes it, idempotently.
        return out | {"code": "the release's code was already in place"}
    answer = control_call(
        region,
        lambda_.update_code,
        name=name,
        code=fn.code_argument(artifact),
        publish=True,
        revision_id=configuration.get("RevisionId", ""),
    )
    version = answer.get("Version", "")
    if not version or version == "$LATEST":
        raise RuntimeError(f"Lambda did not publish a version of {name} with the update.")
    _check_code(name, answer, answer.get("Code") or {}, artifact, what=f"version {version}")
    return out | {
        "code": f"the release's code is in place, published as version {version}",
        "function_version": version,
        "code_sha256": answer.get("CodeSha256", ""),
    }


def _check_code(name: str, configuration: dict, code: dict, artifact, *, what: str) -> None:
    """Refuse a version that does not hold the release's code (its CodeSha256, or image,
    and architecture), naming what was found."""
    if artifact.package_type == "Image" and not code:
        # UpdateFunctionCode's answer carries no ImageUri: the image's digest is checked
        # by the version step, from GetFunction of the version.
        matches = configuration.get("Architectures", ["x86_64"]) == [artifact.architecture]
    else:
        matches = fn.code_matches(configuration, code, artifact)
    if not matches:
        raise RuntimeError(
            f"{name} {what} does not hold the release's code (CodeSha256 "
            f"{configuration.get('CodeSha256')}, expected "
            f"{artifact.code_sha256 or artifact.image_uri}; architecture "
            f"{','.join(configuration.get('Architectures', []))}, expected "
            f"{artifact.architecture})."
        )


def step_schema(job: Job, step) -> dict:
    deployment = deployment_of(job)

    def on_status(text: str) -> None:
        step.detail = text[:255]
        step.save(update_fields=["detail"])

    return release_source.get().apply_schema(
        tenant=deployment.tenant, version=deployment.rollout.release.version, on_status=on_status
    )


def step_publish(job: Job, step) -> dict:
    """The version the code step published, once Lambda has finished making it.

    Read with GetFunction of the version (outside the 15/s budget): its code is checked
    again and, while Lambda still applies the update, the step gives its worker back and
    looks again. Only when the code step found the code already in place does this step
    spend a call: PublishVersion with the CodeSha256 (AWS refuses it if the code changed
    since, and hands back the existing version when nothing changed since the last one).
    """
    deployment = deployment_of(job)
    tenant = deployment.tenant
    name, region = naming.function_name(tenant.slug), tenant.region
    artifact = artifact_for(deployment)
    version = step_output(job, "code").get("function_version", "")
    if not version:
        current = lambda_.get_function(name=name, region=region) or {}
        configuration = current.get("Configuration", {})
        _check_code(name, configuration, current.get("Code", {}), artifact, what="$LATEST")
        version = control_call(
            region,
            lambda_.publish_version,
            name=name,
            code_sha256=configuration["CodeSha256"],
            description=f"release {deployment.rollout.release.version}",
        )["Version"]
    published = lambda_.get_function_at(name=name, qualifier=version, region=region)
    if published is None:
        raise RuntimeError(f"Version {version} of {name} does not exist.")
    configuration = published.get("Configuration", {})
    _check_code(name, configuration, published.get("Code", {}), artifact, what=f"version {version}")
    _busy(configuration, retry_in=settings.DEPLOY_UPDATE_POLL_S)
    return {"function_version": version}


def step_health(job: Job, step) -> dict:
    """The release's health route, sent to the version just published, before the alias
    moves: a failure leaves every request on the version the alias serves now."""
    deployment = deployment_of(job)
    new, _old = _versions(job)
    answer = health_check(deployment.tenant, spec=artifact_for(deployment).health, qualifier=new)
    if not answer.healthy:
        started = step.started_at or timezone.now()
        waited = (timezone.now() - started).total_seconds()
        if answer.retryable and waited < HEALTH_THROTTLE_PATIENCE_S:
            raise StepWait(f"version {new}: {answer.message}: trying again", retry_in=10)
        raise RuntimeError(f"version {new}: {answer.message}")
    return {"health": answer.message, "checked_version": new}


def _versions(job: Job) -> tuple[str, str]:
    """(the version published for this deployment, the version the alias served before)."""
    return (
        step_output(job, "publish").get("function_version", ""),
        step_output(job, "code").get("from_version", ""),
    )


def step_traffic(job: Job, step) -> dict:
    deployment = deployment_of(job)
    tenant, rollout = deployment.tenant, deployment.rollout
    name, region = naming.function_name(tenant.slug), tenant.region
    new, old = _versions(job)
    if rollout.traffic == Traffic.CANARY and old and old != new:
        if deployment.canary_started_at is None:
            control_call(
                region,
                lambda_.update_alias,
                function=name,
                alias=naming.ALIAS,
                version=old,
                weights={new: rollout.canary_percent / 100},
            )
            # The row shows both versions while the canary bakes (same write as its start).
            _update(
                deployment,
                canary_started_at=timezone.now(),
                from_version=old,
                to_version=new,
            )
            raise StepWait(
                f"canary: {rollout.canary_percent}% on version {new}",
                retry_in=min(30, rollout.canary_minutes * 60),
            )
        firing = watch.alarms_firing(tenant)
        if firing:
            raise RuntimeError(f"Canary aborted: alarm {', '.join(firing)} in ALARM.")
        elapsed = (timezone.now() - deployment.canary_started_at).total_seconds()
        remaining = rollout.canary_minutes * 60 - elapsed
        if remaining > 0:
            raise StepWait(
                f"canary: {rollout.canary_percent}% on version {new}, {remaining:.0f} s left",
                retry_in=int(min(30, max(1, remaining))),
            )
    alias = control_call(
        region, lambda_.update_alias, function=name, alias=naming.ALIAS, version=new
    )
    moved_at = time.time()
    # The release's API shape meets its code now (API Gateway calls, no Lambda budget).
    shaped = release_settings.apply_api(job, step, deployment)
    # When all traffic reached the new version: the verify step watches from here.
    return {"alias": alias.get("AliasArn", ""), "version": new, "moved_at": moved_at} | shaped


def step_verify(job: Job, step) -> dict:
    """Watch the tenant from the moment all its traffic reached the new version until the
    deployment's part of the bake is over (``Rollout.watch_s``), re-queued between looks
    (never sleeping in a worker). It fails as soon as an alarm of the tenant is in ALARM,
    the invocations or API requests since the move fail at the rate that makes the
    tenant's status degraded (the same rules), or the alias no longer serves the version.
    """
    deployment = deployment_of(job)
    tenant, rollout = deployment.tenant, deployment.rollout
    new, _old = _versions(job)
    live = _live_version(naming.function_name(tenant.slug), tenant.region)
    if live and new and live != new:
        raise RuntimeError(f"The alias serves version {live}, not {new}.")
    window = rollout.watch_s(deployment.wave)
    moved_at = step_output(job, "traffic").get("moved_at") or (
        (step.started_at or timezone.now()).timestamp()
    )
    elapsed = time.time() - moved_at
    final = elapsed >= window
    seen = watch.look(tenant, since=moved_at, rates=window > 0, fresh=final)
    if seen.alarms_unknown:
        # CloudWatch did not answer and nothing is cached: no verdict either way yet.
        if elapsed < window + ALARM_PATIENCE_S:
            raise StepWait(
                f"alarm states unknown ({seen.alarms_unknown}): looking again", retry_in=15
            )
        raise RuntimeError(f"Could not read the tenant's alarms: {seen.alarms_unknown}")
    if seen.firing:
        raise RuntimeError(
            f"Alarm {', '.join(seen.firing)} in ALARM {elapsed:.0f} s after the alias moved "
            f"to version {new}."
        )
    if seen.findings:
        raise RuntimeError("; ".join(seen.findings) + f" (version {new}).")
    if not final:
        remaining = window - elapsed
        raise StepWait(
            f"watching the tenant on version {new}: {remaining:.0f} s of {window} s left, "
            "no alarm, error rate fine",
            retry_in=int(min(WATCH_CHECK_S, max(1, remaining))),
        )
    return {"watched_s": window, "verdict": "no alarm in ALARM, error rate fine"}


def _succeeded(job: Job) -> None:
    # The deployment's end lives in deploy_outcome, which uses this module's helpers:
    # imported at the call, not at import (either module may be imported first).
    from deployments import deploy_outcome

    deploy_outcome.deployment_succeeded(job)


def _failed(job: Job) -> None:
    from deployments import deploy_outcome

    deploy_outcome.deployment_failed(job)


DEPLOY_STEPS = [
    ("artifact", "Artifact present in the tenant's region", step_artifact),
    ("code", "Function configuration, code published as a version", step_code),
    ("schema", "Database migrations", step_schema),
    ("publish", "Version published with the code, ready (CodeSha256 checked)", step_publish),
    ("health", "Health check before traffic", step_health),
    ("traffic", "Move the 'live' alias", step_traffic),
    ("verify", "Watch alarms and error rate", step_verify),
]

register_job_kind(
    JOB_KIND,
    label="Deploy release",
    steps=DEPLOY_STEPS,
    on_success=_succeeded,
    on_failure=_failed,
)


def rollout_of(deployment: Deployment) -> Rollout:
    return deployment.rollout

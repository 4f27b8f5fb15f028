"""Rolling a tenant back by moving its ``live`` alias: the ``tenant_alias_back`` job.

A roll back (``rollbacks.rollout_rollback``) whose method is ``alias`` starts one of these
per tenant the rolled-back rollout touched. The version the tenant ran before that
rollout is still published (Lambda versions are immutable, code and configuration
together), so going back is one control-plane call: ``UpdateAlias`` to that version, its
canary weights cleared. The migrations stay applied (expand/contract), so nothing runs on
the database and nothing waits for Lambda.

Before the call the job checks, outside the 15/s budget (GetFunction of the alias and of
the version), that going back is safe:

- the version still exists and holds the previous release's code;
- the alias serves what the rolled-back rollout left there (its new version, or the old
  one after a failed deployment's revert). Anything else means something moved the alias
  since (a repair, a password re-applied to the environment): that version's
  configuration may be stale, so the tenant is redeployed instead;

and sends the previous release's health route to that version, since its code now meets
the newer schema. When a check says "redeploy", the job goes on with the deploy steps of
``pipeline`` (the same functions, the same step names), which otherwise pass at once.

No watch follows the move: the alarms that made someone roll back are still in ALARM for
minutes after the alias moved, and a roll back has nowhere further to go.
"""

from __future__ import annotations

from django.utils import timezone

from deployments import deploy_outcome, pipeline, release_settings
from deployments.models import Deployment
from opsconsole.aws import lambda_
from opsconsole.jobs.models import Job
from opsconsole.jobs.registry import StepWait, register_job_kind
from opsconsole.jobs.services import step_output
from tenants import naming, resources

JOB_KIND = "tenant_alias_back"

# A step of the redeploy that runs only when the alias cannot simply go back.
_SKIPPED = {"skipped": "the alias moved back: nothing to redeploy"}


def _fallback(job: Job) -> str:
    """Why this tenant is redeployed instead ("" when the alias goes back)."""
    return step_output(job, "back_check").get("fallback", "")


def _rolled_back(deployment: Deployment) -> Deployment | None:
    """The deployment of the rolled-back rollout on this tenant."""
    return (
        Deployment.objects.filter(
            rollout_id=deployment.rollout.rollback_of_id, tenant_id=deployment.tenant_id
        )
        .select_related("rollout__release")
        .first()
    )


def step_back_check(job: Job, step) -> dict:
    deployment = pipeline.deployment_of(job)
    tenant = deployment.tenant
    name, region = naming.function_name(tenant.slug), tenant.region
    before = _rolled_back(deployment)
    target = before.from_version if before else ""
    moved_to = before.to_version if before else ""
    serving = pipeline._live_version(name, region)
    out = {
        "target": target,
        "serving": serving,
        "moved_to": moved_to,
        "rolled_back": before.rollout.release.version if before else "",
    }
    if not target:
        return out | {"fallback": "the version it ran before was not recorded"}
    found = lambda_.get_function_at(name=name, qualifier=target, region=region)
    if found is None:
        return out | {"fallback": f"version {target} no longer exists"}
    artifact = pipeline.artifact_for(deployment)
    try:
        pipeline._check_code(
            name,
            found.get("Configuration", {}),
            found.get("Code", {}),
            artifact,
            what=f"version {target}",
        )
    except RuntimeError as exc:
        return out | {"fallback": str(exc)}
    if serving not in {target, moved_to}:
        return out | {
            "fallback": f"the alias serves version {serving}, which rollout "
            f"#{deployment.rollout.rollback_of_id} did not put there: its configuration "
            f"may be newer than version {target}'s"
        }
    return out | {"fallback": ""}


def step_back_health(job: Job, step) -> dict:
    """The previous release's health route, sent to its version before the alias moves:
    its code now runs on the schema the newer release migrated."""
    if _fallback(job):
        return {"skipped": "redeploying instead"}
    deployment = pipeline.deployment_of(job)
    target = step_output(job, "back_check")["target"]
    spec = pipeline.artifact_for(deployment).health
    answer = pipeline.health_check(deployment.tenant, spec=spec, qualifier=target)
    if not answer.healthy:
        waited = (timezone.now() - (step.started_at or timezone.now())).total_seconds()
        if answer.retryable and waited < pipeline.HEALTH_THROTTLE_PATIENCE_S:
            raise StepWait(f"version {target}: {answer.message}: trying again", retry_in=10)
        raise RuntimeError(
            f"version {target} ({deployment.rollout.release.version}) fails its health "
            f"check on today's schema: {answer.message}"
        )
    return {"health": answer.message, "checked_version": target}


def step_back_alias(job: Job, step) -> dict:
    """The one control-plane call: ``live`` to the version it served before, weights
    cleared (also after a canary the rolled-back rollout left halfway)."""
    if _fallback(job):
        return {"skipped": "redeploying instead"}
    deployment = pipeline.deployment_of(job)
    tenant = deployment.tenant
    name, region = naming.function_name(tenant.slug), tenant.region
    check = step_output(job, "back_check")
    target = check["target"]
    alias = pipeline.control_call(
        region, lambda_.update_alias, function=name, alias=naming.ALIAS, version=target
    )
    # $LATEST still holds the release rolled back from: drift checks it against that one.
    resources.record(
        tenant,
        kind="alias",
        name=f"{name}:{naming.ALIAS}",
        identifier=name,
        arn=alias.get("AliasArn", ""),
        details={
            "version": target,
            "release": deployment.rollout.release.version,
            "latest_release": check.get("rolled_back", ""),
        },
    )
    # The API shape and alarm rules go back with the code (where the releases differ).
    return (
        {"alias": alias.get("AliasArn", ""), "version": target}
        | release_settings.apply_api(job, step, deployment)
        | release_settings.apply_alarms(job, step, deployment)
    )


def _unless_moved_back(fn):
    """A deploy step that runs only when this tenant is redeployed instead."""

    def step(job: Job, step_row) -> dict:
        if not _fallback(job):
            return _SKIPPED
        return fn(job, step_row)

    step.__name__ = fn.__name__
    step.__doc__ = fn.__doc__
    return step


def back_succeeded(job: Job) -> None:
    if _fallback(job):
        deploy_outcome.deployment_succeeded(job)
        return
    deployment = pipeline.deployment_of(job)
    check = step_output(job, "back_check")
    deploy_outcome.mark_succeeded(
        deployment.pk,
        version=deployment.rollout.release.version,
        from_version=check.get("serving", ""),
        to_version=check.get("target", ""),
    )
    deploy_outcome.kick(deployment.rollout_id)


def back_failed(job: Job) -> None:
    if _fallback(job):
        deploy_outcome.deployment_failed(job)
        return
    deployment = pipeline.deployment_of(job)
    check = step_output(job, "back_check")
    serving = check.get("serving", "")
    # A failed UpdateAlias changed nothing; every earlier step only looked.
    where = f"the alias still serves version {serving}" if serving else "the alias did not move"
    deploy_outcome.record_failed(
        job,
        deployment,
        reverted=where,
        from_version=serving,
        to_version=check.get("target", ""),
    )


BACK_STEPS = [
    ("back_check", "Find the version it ran before (still there, code checked)", step_back_check),
    ("back_health", "Health check of that version", step_back_health),
    ("back_alias", "Move the 'live' alias back", step_back_alias),
] + [
    (name, f"Redeploy if the alias cannot go back: {label[0].lower()}{label[1:]}", fn)
    for name, label, fn in [(n, lbl, _unless_moved_back(f)) for n, lbl, f in pipeline.DEPLOY_STEPS]
]

register_job_kind(
    JOB_KIND,
    label="Roll back (alias)",
    steps=BACK_STEPS,
    on_success=back_succeeded,
    on_failure=back_failed,
)

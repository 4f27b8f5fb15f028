"""How a deployment ends: the ``tenant_deploy`` job's hooks.

Succeeded: the deployment and its tenant are written in one statement (the tenant runs
the release), and the orchestrator is asked to look again. Failed: the alias goes back to
the version it served before (unless it never moved), the deployment is failed with the
job's error and where its alias is, the tenant's desired release is its old one again,
and its API shape and alarm rules follow the alias back (``release_settings``).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from deployments import pipeline, release_settings
from deployments.models import Deployment, DeploymentStatus
from opsconsole.aws import lambda_
from opsconsole.aws.errors import AwsError
from opsconsole.jobs.models import Job
from opsconsole.jobs.registry import StepWait
from opsconsole.jobs.services import step_output
from opsconsole.webhooks import events as webhook_events
from opsconsole.webhooks.services import emit
from tenants import naming
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def kick(rollout_id: int) -> None:
    """After the commit, have the orchestrator look at the rollout again, soon.

    Deployments end several a second in a big rollout; one orchestrator pass per
    ROLLOUT_ADVANCE_DEBOUNCE_S handles every one that ended meanwhile (and starts their
    successors in one batch) instead of a pass per deployment. The first deployment to end
    sets a short-lived key and sends the pass with that delay; the ones that end while
    the key lives rely on that pass, which runs after the key is gone and so sees them.
    Without the cache (or with the debounce at 0) every end sends its own pass.
    """
    from deployments.tasks import rollout_advance_task

    delay = settings.ROLLOUT_ADVANCE_DEBOUNCE_S

    def send() -> None:
        try:
            if delay and not cache.add(f"rollout-advance-due:{rollout_id}", 1, timeout=delay):
                return  # a pass is already on its way and will see this deployment
        except Exception:  # noqa: BLE001 - no cache: send the pass anyway
            logger.warning("Cache unavailable; advancing rollout %s at once", rollout_id)
        try:
            rollout_advance_task.apply_async(args=[rollout_id], countdown=delay or None)
        except Exception:  # noqa: BLE001 - the beat entry advances it anyway
            logger.exception("Could not send rollout_advance for %s", rollout_id)

    transaction.on_commit(send)


# The deployment and its tenant in one statement: both are written or neither is (the
# catch-up writes only a deployment still running). The tenant's UPDATE reads the
# deployment's RETURNING, so the deployment row is always locked first, the same order as
# every other writer of both (no deadlock between the hook and the orchestrator's catch-up).
_SUCCEEDED_SQL = """
WITH deployment AS (
    UPDATE deployments_deployment SET status = %(status)s, step = 'done',
        finished_at = %(finished_at)s, reason = '', from_version = %(from_version)s,
        to_version = %(to_version)s
    WHERE id = %(deployment)s AND (status = %(running)s OR NOT %(only_running)s)
    RETURNING tenant_id
)
UPDATE tenants_tenant SET current_release = %(version)s, desired_release = %(version)s,
    updated_at = %(now)s
FROM deployment WHERE tenants_tenant.id = deployment.tenant_id
"""


def mark_succeeded(
    deployment_id: int,
    *,
    version: str,
    finished_at=None,
    from_version: str = "",
    to_version: str = "",
    only_running: bool = False,
) -> None:
    """The deployment succeeded: it and its tenant now run ``version``. Used by the job's
    hook (also after a job-level Retry of a failed deployment) and, with ``only_running``,
    by the orchestrator's catch-up when the hook never ran."""
    now = timezone.now()
    with connection.cursor() as cur:
        cur.execute(
            _SUCCEEDED_SQL,
            {
                "status": DeploymentStatus.SUCCEEDED,
                "running": DeploymentStatus.RUNNING,
                "only_running": only_running,
                "finished_at": finished_at or now,
                "now": now,
                "version": version,
                "from_version": from_version,
                "to_version": to_version,
                "deployment": deployment_id,
            },
        )


def deployment_succeeded(job: Job) -> None:
    deployment = pipeline.deployment_of(job)
    to_version, from_version = pipeline._versions(job)
    mark_succeeded(
        deployment.pk,
        version=deployment.rollout.release.version,
        from_version=from_version,
        to_version=to_version,
    )
    kick(deployment.rollout_id)


def revert_alias(deployment: Deployment, from_version: str) -> str:
    """Point ``live`` back at the version it served before this deployment.

    Putting a failed tenant back comes before the budget: without a token soon it calls
    anyway, and a throttle is tried again twice (after 1 s, then 2 s) before it counts as
    a failed revert.
    """
    tenant = deployment.tenant
    name, region = naming.function_name(tenant.slug), tenant.region
    if not from_version:
        return "nothing to revert (the alias had not moved)"
    for attempt in range(3):
        try:
            return _revert(name, region, from_version)
        except AwsError as exc:
            if not exc.throttled or attempt == 2:
                raise
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def _revert(name: str, region: str, from_version: str) -> str:
    # GetAlias and UpdateAlias are both control-plane calls.
    _token_or_go(region, name)
    alias = lambda_.get_alias(function=name, alias=naming.ALIAS, region=region)
    weights = (alias or {}).get("RoutingConfig", {}).get("AdditionalVersionWeights")
    if alias and alias.get("FunctionVersion") == from_version and not weights:
        return f"alias already on version {from_version}"
    _token_or_go(region, name)
    lambda_.update_alias(function=name, alias=naming.ALIAS, version=from_version, region=region)
    return f"alias reverted to version {from_version}"


def _token_or_go(region: str, name: str) -> None:
    try:
        pipeline.control(region)
    except StepWait:
        logger.warning("No Lambda budget for the revert of %s: calling anyway", name)


def _alias_touched(job: Job) -> bool:
    """Whether the traffic step ever started: before it, the alias was never changed."""
    return job.steps.filter(name="traffic", started_at__isnull=False).exists()


def deployment_failed(job: Job) -> None:
    deployment = pipeline.deployment_of(job)
    to_version, from_version = pipeline._versions(job)
    if not _alias_touched(job):
        # Nothing to put back, and no control-plane call spent finding that out.
        reverted = (
            f"the alias never moved: version {from_version} still serves every request"
            if from_version
            else "the alias never moved"
        )
    else:
        try:
            reverted = revert_alias(deployment, from_version)
        except Exception as exc:  # noqa: BLE001 - the failure is recorded, a person looks
            logger.exception("Alias revert failed for %s", deployment.tenant.slug)
            reverted = f"alias revert FAILED: {exc}"
    record_failed(
        job, deployment, reverted=reverted, from_version=from_version, to_version=to_version
    )
    if _alias_touched(job) or step_output(job, "code").get("alarms_written"):
        # The tenant's desired release is its old one again: its API shape and alarm
        # rules follow the alias back.
        try:
            release_settings.restore_after_revert(job, None, deployment)
        except Exception:  # noqa: BLE001 - the next reconcile (or drift) puts them right
            logger.exception("Could not put back the API shape and alarms of %s", job.subject_id)


def record_failed(
    job: Job, deployment: Deployment, *, reverted: str, from_version: str, to_version: str
) -> None:
    """The deployment failed with the job's error; ``reverted`` says where its alias is."""
    with transaction.atomic():
        Deployment.objects.filter(pk=deployment.pk).update(
            status=DeploymentStatus.FAILED,
            finished_at=timezone.now(),
            reason=f"{job.error} ({reverted})"[:2000],
            from_version=from_version,
            to_version=to_version,
        )
        # The tenant stays on what it ran: a reconcile must not push the failed release.
        Tenant.objects.filter(pk=deployment.tenant_id).update(
            desired_release=deployment.from_release or deployment.tenant.current_release
        )
        payload = webhook_events.deployment_payload(
            deployment,
            tenant_slug=deployment.tenant.slug,
            release=deployment.rollout.release.version,
            reason=f"{job.error} ({reverted})",
        )
        emit(webhook_events.DEPLOYMENT_FAILED, payload)
        kick(deployment.rollout_id)

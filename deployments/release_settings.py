"""A release's API shape and alarm rules, applied by the deployment that brings it.

Memory, timeout, runtime, environment and permissions travel with the code update
(``pipeline.step_code``). The HTTP API's shape (payload format, stage, CORS, access logs,
throttling) and the alarms' thresholds belong to the stack around the function, so a
release that changes them would otherwise wait for the next reconcile while its code
already runs. A deployment compares the two releases' settings (the tenant's overrides
applied to both; no AWS call) and, where they differ, runs the same convergence
onboarding and repair run:

- alarms before the code goes live: the canary's watch then judges the new release by
  its own rules;
- the API right after the alias moves (and after a roll back moved it back): a new payload
  format must meet the code written for it. Requests in the moment between the two calls
  reach the code in the other format; a release that changes it says so in its plan.
"""

from __future__ import annotations

from deployments.models import Deployment, Release
from deployments.tenant_release import release_artifact
from tenants.app_settings import AppSettings, effective_alarms, effective_api, parse_overrides
from tenants.provisioning.alarms import step_alarms
from tenants.provisioning.api import step_api


def _settings(version: str) -> AppSettings | None:
    release = Release.objects.filter(version=version).first()
    return release_artifact(release).app_settings if release else None


def changes(deployment: Deployment) -> dict[str, bool]:
    """{"api": ..., "alarms": ...}: what differs between the release the tenant ran
    (``from_release``) and the one this deployment brings, for this tenant."""
    new = _settings(deployment.rollout.release.version) or AppSettings()
    old = _settings(deployment.from_release) if deployment.from_release else None
    if old is None:
        return {"api": True, "alarms": True}  # nothing to compare with: converge both
    overrides = parse_overrides(deployment.tenant.app_overrides)
    return {
        "api": effective_api(old, overrides) != effective_api(new, overrides),
        "alarms": effective_alarms(old, overrides) != effective_alarms(new, overrides),
    }


def apply_alarms(job, step, deployment: Deployment) -> dict:
    """The release's alarm rules, when they differ from the previous release's."""
    if not changes(deployment)["alarms"]:
        return {}
    return {"alarms": step_alarms(job, step)}


def apply_api(job, step, deployment: Deployment) -> dict:
    """The release's API shape, when it differs from the previous release's."""
    if not changes(deployment)["api"]:
        return {}
    applied = step_api(job, step)
    return {"api": {k: applied[k] for k in ("stage", "endpoint") if k in applied}}


def payload_format_changes(release: Release, tenants) -> list[str]:
    """Slugs of ``tenants`` whose API would change payload format with ``release``."""
    new = release_artifact(release).app_settings
    olds = {
        r.version: release_artifact(r).app_settings
        for r in Release.objects.filter(version__in={t.current_release for t in tenants})
    }
    changed = []
    for tenant in tenants:
        old = olds.get(tenant.current_release)
        if old is None:
            continue
        overrides = parse_overrides(tenant.app_overrides)
        if (
            effective_api(old, overrides).payload_format
            != effective_api(new, overrides).payload_format
        ):
            changed.append(tenant.slug)
    return changed


def restore_after_revert(job, step, deployment: Deployment) -> dict:
    """A failed deployment's alias went back: so do the API shape and alarm rules it had
    applied (the tenant's desired release is its old one again by now)."""
    out = {}
    found = changes(deployment)
    if found["api"]:
        out["api"] = step_api(job, step)
    if found["alarms"]:
        out["alarms"] = step_alarms(job, step)
    return out

"""Roll back: the tenants a rollout touched go back to the release each ran before.

Each way back is a rollout of its own (``rollback_of`` names the one it undoes), so the
orchestrator, waves, limits and pages are the same. ``alias`` moves aliases back
(``alias_rollback``: one control call a tenant); ``redeploy`` deploys the earlier release
again, every step.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from django.db.models import Count

from deployments.models import (
    DeploymentStatus,
    Release,
    Rollout,
    RolloutMethod,
    RolloutStatus,
    Traffic,
)
from deployments.rollout_estimate import changes_configuration_counts, estimate
from deployments.rollouts import (
    RolloutRefused,
    Strategy,
    Target,
    rollout_cancel,
    rollout_start,
)

_CONTRACT_RE = re.compile(r"\b(DROP\s+(COLUMN|TABLE)|RENAME\b|ALTER\s+COLUMN\b.*\bTYPE\b)", re.I)


def rollback_warnings(rollout: Rollout, previous: Release) -> list[str]:
    """Migrations the rolled-back release added: the previous code must live with them."""
    have = set(previous.migrations.values_list("version", flat=True))
    added = [m for m in rollout.release.migrations.all() if m.version not in have]
    warnings = []
    for m in added:
        if _CONTRACT_RE.search(m.sql):
            warnings.append(
                f"{m.name} drops, renames or retypes something: it breaks the expand/contract "
                f"rule, and {previous.version}'s code may fail on the new schema."
            )
        else:
            warnings.append(f"{m.name} stays applied (schema is not rolled back).")
    return warnings


ROLLBACK_METHODS = {"alias": RolloutMethod.ALIAS, "redeploy": RolloutMethod.DEPLOY}


def _rollback_strategy(rollout: Rollout) -> Strategy:
    """The rolled-back rollout's limits, no bake, all traffic at once: going back is
    urgent, and the version it returns to served these tenants before."""
    return Strategy(
        max_parallel=rollout.max_parallel,
        canary_max_failures=rollout.canary_max_failures,
        wave_failure_pct=rollout.wave_failure_pct,
        bake_s=0,
        traffic=Traffic.ALL_AT_ONCE,
    )


@dataclass
class RollbackChoice:
    method: str  # a key of ROLLBACK_METHODS
    label: str
    calls: int
    estimate_s: int
    what: str


def touched_deployments(deployments):
    """The deployments a roll back takes back: those that ran (or run) and whose tenant
    ran a release before."""
    return deployments.filter(
        status__in=[DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED, DeploymentStatus.RUNNING]
    ).exclude(from_release="")


def rollback_choices(rollout: Rollout, counts: dict[str, int], touched) -> list[RollbackChoice]:
    """What each way back costs for ``counts`` ({previous release: tenants}) among the
    ``touched`` deployments: control calls and the simulated time, from the model the
    preview uses, read from counts in SQL (no row per tenant). Every group runs at once on
    the budget of each AWS account and region, so the busiest cell's share of the waves
    (canary, 10 %, the rest, as ``plan_waves`` cuts them) sets the time."""
    total = sum(counts.values())
    if not total:
        return []
    canary = touched.filter(tenant__ring=0).count() or 1
    second = min(math.ceil(total * 0.10), total - canary)
    waves = [canary, second, total - canary - second]
    cells = list(
        touched.order_by()
        .values("tenant__aws_account_id", "tenant__region")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    share = max(cells) / total if cells else 1.0
    busiest = [math.ceil(w * share) for w in waves]
    strategy = _rollback_strategy(rollout)
    alias_s, *_ = estimate(busiest, strategy, alias_back=True)
    # Every touched tenant runs the rolled-back release; each group goes to its own.
    config = sum(
        changes_configuration_counts(previous, {rollout.release.version: counts[previous.version]})
        for previous in Release.objects.filter(version__in=list(counts))
    )
    again_s, *_ = estimate(busiest, strategy, config_updates=math.ceil(config * share))
    return [
        RollbackChoice(
            "alias",
            "Move aliases back",
            total,
            alias_s,
            "Each tenant's alias returns to the version it ran before (1 call); migrations "
            "stay applied. A tenant whose version is gone, or whose alias something else "
            "moved since, is redeployed instead.",
        ),
        RollbackChoice(
            "redeploy",
            "Redeploy the earlier release",
            2 * total + config,
            again_s,
            "Every deploy step again: code update, a new version, health check, alias. "
            "For when the earlier versions are gone.",
        ),
    ]


def rollout_rollback(rollout: Rollout, *, created_by=None, method: str = "alias") -> list[Rollout]:
    """Roll the tenants this rollout touched back to the release each ran before it.

    ``alias`` (the default) moves each tenant's alias back to the version it ran before:
    one control call, no migrations, and a redeploy only where that version is gone
    (``alias_rollback``). ``redeploy`` deploys the earlier release again, every step.
    """
    if method not in ROLLBACK_METHODS:
        raise RolloutRefused(f"Unknown roll back method {method!r}: alias or redeploy.")
    if rollout.status in (RolloutStatus.RUNNING, RolloutStatus.PAUSED, RolloutStatus.HALTED):
        rollout_cancel(rollout)
    touched = touched_deployments(rollout.deployments)
    by_release: dict[str, list[str]] = {}
    for from_release, slug in touched.values_list("from_release", "tenant__slug"):
        by_release.setdefault(from_release, []).append(slug)
    created = []
    strategy = _rollback_strategy(rollout)
    for version, slugs in by_release.items():
        previous = Release.objects.filter(version=version).first()
        if previous is None:
            continue
        created.append(
            rollout_start(
                release=previous,
                target=Target(kind="tenants", values=sorted(slugs), on_conflict="wait"),
                strategy=strategy,
                created_by=created_by,
                confirm_downgrade=True,
                rollback_of=rollout,
                method=ROLLBACK_METHODS[method],
            )
        )
    if not created:
        raise RolloutRefused("No tenant of this rollout has an earlier release to go back to.")
    return created

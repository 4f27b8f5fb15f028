"""How long a rollout (or a roll back) takes, and how many Lambda calls: the preview's
figures, from the simulation the rollout bench checks (``deployments.fleet_model``).

Each AWS account and region is a cell with its own budget and its own ``max_parallel``
slots (``rollouts._fill``), so a fleet over several cells is estimated cell by cell and
the busiest one sets the time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from django.conf import settings

from deployments import fleet_model
from deployments.models import Release, Traffic, watch_seconds
from tenants.models import Tenant

if TYPE_CHECKING:
    from deployments.rollouts import Strategy


def changes_configuration(release: Release, tenants: list[Tenant]) -> int:
    """How many of ``tenants`` run a release whose function settings differ from
    ``release``'s: their deployments update the configuration before the code."""
    running: dict[str, int] = {}
    for tenant in tenants:
        key = tenant.current_release or release.version  # none yet: nothing to change
        running[key] = running.get(key, 0) + 1
    return changes_configuration_counts(release, running)


_SETTINGS_KEYS = ("artifact_type", "runtime", "handler")


def changes_configuration_counts(release: Release, running: dict[str, int]) -> int:
    """``changes_configuration`` from counts: {the release tenants run: how many}."""
    settings_of = {
        r["version"]: tuple(r[k] for k in _SETTINGS_KEYS)
        for r in Release.objects.filter(version__in=list(running)).values(
            "version", *_SETTINGS_KEYS
        )
    }
    wanted = tuple(getattr(release, k) for k in _SETTINGS_KEYS)
    return sum(n for version, n in running.items() if settings_of.get(version, wanted) != wanted)


def _chain(
    strategy: Strategy, *, config_updates: bool, alias_back: bool = False
) -> fleet_model.Chain:
    return fleet_model.Chain(
        alias_back=alias_back,
        config_update=config_updates,
        canary_s=strategy.canary_minutes * 60 if strategy.traffic == Traffic.CANARY else 0,
        poll_s=settings.DEPLOY_UPDATE_POLL_S,
    )


def estimate(
    wave_sizes: list[int],
    strategy: Strategy,
    *,
    config_updates: int = 0,
    alias_back: bool = False,
) -> tuple[int, int, int, int]:
    """(estimate, rate bound, the tenants' own waits, control calls) in seconds, from the
    simulation the rollout bench checks against its measurement (deployments.fleet_model).
    Tenants whose configuration changes spend one call more; the chain is taken as theirs
    for all when any does (an upper bound: the update's wait is in every chain).
    ``alias_back``: a roll back that moves aliases back (one call a tenant)."""
    config_updates = 0 if alias_back else config_updates
    chain = _chain(strategy, config_updates=config_updates > 0, alias_back=alias_back)
    common = {
        "waves": wave_sizes,
        "burst": settings.LAMBDA_CONTROL_BURST,
        "max_parallel": strategy.max_parallel,
        "watch_s": [watch_seconds(bake_s=strategy.bake_s, wave=w) for w in range(len(wave_sizes))],
        "bake_s": float(strategy.bake_s),
        "chain": chain,
        "kick_s": settings.ROLLOUT_ADVANCE_DEBOUNCE_S,
    }
    at_budget = fleet_model.estimate(rate=settings.LAMBDA_CONTROL_RATE, **common)
    unbounded = fleet_model.estimate(rate=1e9, **common)
    calls = sum(wave_sizes) * (chain.control_calls - int(chain.config_update)) + config_updates
    return (
        math.ceil(at_budget.wall_s),
        math.ceil(calls / settings.LAMBDA_CONTROL_RATE),
        math.ceil(unbounded.wall_s),
        calls,
    )


def estimate_for(
    waves: list[list[Tenant]],
    strategy: Strategy,
    *,
    config_updates: int = 0,
    alias_back: bool = False,
) -> tuple[int, int, int, int]:
    """``estimate`` for these tenants, cell by cell: each AWS account and region has its
    own budget and its own ``max_parallel`` slots (``_fill``), so the cells run side by
    side and the busiest one sets the time. Calls are the fleet's; the rate bound, the
    busiest cell's."""
    cells: dict[tuple, list[int]] = {}
    for w, wave in enumerate(waves):
        for tenant in wave:
            cells.setdefault((tenant.aws_account_id, tenant.region), [0] * len(waves))[w] += 1
    if len(cells) <= 1:
        return estimate(
            [len(w) for w in waves], strategy, config_updates=config_updates, alias_back=alias_back
        )
    total = sum(len(w) for w in waves)
    results = [
        estimate(
            sizes,
            strategy,
            # The configuration updates, shared out by cell size (which tenants change is
            # not worth a query per cell here).
            config_updates=round(config_updates * sum(sizes) / total),
            alias_back=alias_back,
        )
        for sizes in cells.values()
    ]
    return (
        max(r[0] for r in results),
        max(r[1] for r in results),
        max(r[2] for r in results),
        sum(r[3] for r in results),
    )

"""What the rollout pages say about a rollout, in people's words.

``rollouts.py`` decides and does; this module only reads the rows it wrote and explains
them: which phase a running rollout is in (a wave deploying, the canary being watched, the
pause between waves), how long that lasts, why each tenant is in its wave (the rule of
``rollouts.plan_waves``), and what a confirmation should name before an operator acts.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from deployments.models import (
    DEPLOYMENT_DONE,
    Deployment,
    DeploymentStatus,
    Release,
    Rollout,
    RolloutStatus,
)
from deployments.rollbacks import rollback_choices, touched_deployments
from deployments.rollouts import Preview
from opsconsole.core.humanize import duration_text
from opsconsole.jobs.models import JobStep, StepStatus
from tenants.models import Tenant
from tenants.scope import scope_filter, user_is_scoped

# plan_waves: the canary, then this share of the target (rounded up), then the rest.
SECOND_WAVE_SHARE = 0.10


def wave_name(wave: int) -> str:
    """'Wave 1 (canary)', 'Wave 2': waves are 0-based in the rows, 1-based for people."""
    return "Wave 1 (canary)" if wave == 0 else f"Wave {wave + 1}"


def canary_is_ring0(rollout: Rollout, deployments=None) -> bool:
    """True when every canary deployment of the rollout (of ``deployments``, a scoped
    user's, when given) is a ring-0 tenant (one query, however many deployments)."""
    source = rollout.deployments if deployments is None else deployments
    canary = source.filter(wave=0).aggregate(
        every=Count("id"), ring0=Count("id", filter=Q(tenant__ring=0))
    )
    return bool(canary["every"]) and canary["every"] == canary["ring0"]


def wave_rules(wave_sizes: list[int], *, canary_ring0: bool) -> list[str]:
    """The rule plan_waves applied to put tenants in each wave, one sentence per wave.

    The planner orders the target by ring, then slug. Its canary is every ring-0 tenant of
    the target, or the first tenant in that order when the target has none in ring 0."""
    if not wave_sizes:
        return []
    return [_canary_rule(canary_ring0), *_later_rules(wave_sizes)]


def _later_rules(wave_sizes: list[int]) -> list[str]:
    total = sum(wave_sizes)
    rules = []
    for wave, size in enumerate(wave_sizes[1:], start=1):
        if wave == 1:
            rules.append(
                f"The next {size} in ring order: {int(SECOND_WAVE_SHARE * 100)}% of the "
                f"{total} targeted, rounded up"
            )
        else:
            rules.append("The rest of the target, once the wave before has baked")
    return rules


def _canary_rule(ring0: bool) -> str:
    if ring0:
        return "Canary: the target's ring-0 tenants go first"
    return "Canary: the target has no ring-0 tenant, so the first tenant in ring order goes first"


def preview_wave_rules(preview: Preview) -> list[str]:
    """wave_rules for a preview, which knows slugs only (one query for the canary's rings)."""
    if not preview.waves:
        return []
    canary = preview.waves[0]
    ring0 = Tenant.objects.filter(slug__in=canary, ring=0).count() == len(canary)
    sizes = [len(w) for w in preview.waves]
    return [_canary_rule(ring0), *_later_rules(sizes)]


def start_confirmation(release: Release, preview: Preview) -> dict:
    """What the Start confirmation names: the release, how many tenants, the canary."""
    canary = preview.waves[0] if preview.waves else []
    lines = [
        f"{preview.total} tenant(s) get {release.version}, in {len(preview.waves)} wave(s).",
        f"The canary first: {', '.join(canary[:8])}{', …' if len(canary) > 8 else ''}.",
        f"About {duration_text(preview.estimate_s)} in all, bake time included.",
    ]
    if preview.busy:
        lines.append(f"{len(preview.busy)} tenant(s) are in another rollout.")
    if preview.downgrades:
        lines.append(f"{len(preview.downgrades)} tenant(s) go down to an older release.")
    return {
        "title": f"Deploy {release.version} to {preview.total} tenant(s)?",
        "lines": lines,
        "total": preview.total,
    }


def wave_reason(deployment: Deployment, *, canary_ring0: bool) -> str:
    """Why this tenant is in its wave, for its row."""
    ring = deployment.tenant.ring
    if deployment.wave == 0:
        return "ring 0: canary" if canary_ring0 else f"first in ring order (ring {ring})"
    if deployment.wave == 1:
        return f"next {int(SECOND_WAVE_SHARE * 100)}% in ring order (ring {ring})"
    return f"the rest (ring {ring})"


def annotate_reasons(deployments: list[Deployment], *, canary_ring0: bool) -> None:
    """Give each row ``wave_reason`` (no query: the rows carry their tenants)."""
    for deployment in deployments:
        deployment.wave_reason = wave_reason(deployment, canary_ring0=canary_ring0)


@dataclass
class Phase:
    """A running rollout's phase for people: the pill's word and one sentence."""

    label: str  # "Baking", "Waiting", "Deploying"
    sentence: str
    remaining_s: int | None = None
    ends_at: datetime | None = None

    @property
    def remaining(self) -> str:
        return duration_text(self.remaining_s) if self.remaining_s is not None else ""


def _moved_at(jobs: list[int]) -> dict[int, float]:
    """{job id: when its alias moved} for the deployments already watching (one query):
    the traffic step records the moment all traffic reached the new version."""
    rows = JobStep.objects.filter(
        job_id__in=jobs, name="traffic", status=StepStatus.SUCCEEDED
    ).values_list("job_id", "output")
    return {
        job: out["moved_at"] for job, out in rows if isinstance(out, dict) and out.get("moved_at")
    }


def rollout_phase(
    rollout: Rollout, counts: dict[str, Any], deployments=None, *, now: datetime | None = None
) -> Phase | None:
    """What a running rollout is doing now, or None when its status says it all.

    The orchestrator's states, read back: the current wave's deployments watching their
    tenants (the canary watches the whole bake, ``Rollout.watch_s``), the pause after a
    wave (``Rollout.pause_after_s``), a weighted canary on the alias, or tenants held by
    another rollout. "0 running · 4 pending" is one of these, never "stuck".

    From ``counts`` (rollout_counts over ``deployments``, a scoped user's, when given)
    and the current wave's running deployments (at most max parallel of them) and the
    distinct reasons its pending ones wait: a few queries however large the rollout."""
    if rollout.status != RolloutStatus.RUNNING:
        return None
    now = now or timezone.now()
    wave = rollout.current_wave
    source = rollout.deployments if deployments is None else deployments
    waves = counts["waves"]
    pending_n = waves[wave]["pending"] if wave < len(waves) else 0
    later = sum(w["pending"] for w in waves[wave + 1 :])
    running = list(source.filter(wave=wave, status=DeploymentStatus.RUNNING))
    pending = pending_n > 0
    who = "the canary" if wave == 0 else f"wave {wave + 1}"
    if running:
        moved = _moved_at([d.job_id for d in running if d.job_id])
        watching, canaries = [], []
        for d in running:
            if d.job_id in moved:
                left = rollout.watch_s(d.wave) - (now.timestamp() - moved[d.job_id])
                watching.append(max(0.0, left))
            elif d.canary_started_at:
                left = rollout.canary_minutes * 60 - (now - d.canary_started_at).total_seconds()
                canaries.append(max(0.0, left))
        if len(watching) == len(running) and not pending and watching:
            left = int(math.ceil(max(watching)))
            then = f"; then {wave_name(wave + 1).lower()} ({later} pending)" if later else ""
            return Phase(
                "Baking",
                f"Baking: watching {who}'s alarms and error rate for {duration_text(left)} "
                f"more{then}.",
                left,
                now + timedelta(seconds=left),
            )
        if canaries and len(canaries) + len(watching) == len(running):
            left = int(math.ceil(max(canaries)))
            return Phase(
                "Canary",
                f"Canary traffic: {rollout.canary_percent}% of {who}'s requests go to the new "
                f"version for {duration_text(left)} more, then all of them.",
                left,
                now + timedelta(seconds=left),
            )
        return None  # deploying: the rows say which step each one is on
    if pending:
        held = sorted(
            source.filter(
                wave=wave, status=DeploymentStatus.PENDING, reason__startswith="waiting for"
            )
            .order_by()
            .values_list("reason", flat=True)
            .distinct()
        )
        if held:
            return Phase(
                "Waiting",
                f"Waiting: {pending_n} tenant(s) of {who} are in another rollout "
                f"({', '.join(r.removeprefix('waiting for ') for r in held)}); they start "
                "when it lets go of them.",
            )
        return Phase("Starting", f"Starting {pending_n} deployment(s) of {who}.")
    if later:
        nxt = wave_name(wave + 1).lower()
        pause = rollout.pause_after_s(wave)
        if rollout.wave_finished_at and pause:
            left = int(math.ceil(pause - (now - rollout.wave_finished_at).total_seconds()))
            if left > 0:
                return Phase(
                    "Baking",
                    f"Baking: {wave_name(wave).lower()} is done; {nxt} ({later} tenant(s)) "
                    f"starts in {duration_text(left)} (bake time {duration_text(pause)}).",
                    left,
                    now + timedelta(seconds=left),
                )
        return Phase(
            "Baking",
            f"Bake over: {nxt} ({later} tenant(s)) starts at the orchestrator's next pass "
            f"(every {settings.ROLLOUT_ADVANCE_SECONDS} s).",
            0,
        )
    return None


# --- what confirmations name ------------------------------------------------------------


# A confirmation names this many tenants per release, then counts the rest.
_NAMED = 8


def rollback_plan(rollout: Rollout, deployments=None) -> dict[str, tuple[int, list[str]]]:
    """{previous release: (how many tenants, the first slugs)} a Roll back would start,
    as ``rollout_rollback`` picks them (the tenants it touched that ran a release before
    it), among ``deployments`` (a scoped user's) when given. Counted in SQL: one query,
    and one per release for the names (a rollout's tenants came from a release or two)."""
    source = rollout.deployments if deployments is None else deployments
    touched = touched_deployments(source)
    counts = touched.order_by("from_release").values_list("from_release").annotate(n=Count("id"))
    return {
        version: (
            n,
            list(
                touched.filter(from_release=version)
                .order_by("tenant__slug")
                .values_list("tenant__slug", flat=True)[: _NAMED + 1]
            ),
        )
        for version, n in counts
    }


def _rollback_choices(rollout: Rollout, plan: dict[str, tuple[int, list[str]]], deployments):
    """The ways back and their cost. The live region polls every few seconds and the
    simulation of a big fleet takes a moment: kept a minute per rollout and plan size."""
    counts = {version: n for version, (n, _slugs) in plan.items()}
    key = f"rollback-choices:{rollout.pk}:{len(plan)}:{sum(counts.values())}"
    try:
        found = cache.get(key)
    except Exception:  # noqa: BLE001 - no cache: compute it
        found = None
    if found is None:
        source = rollout.deployments if deployments is None else deployments
        found = rollback_choices(rollout, counts, touched_deployments(source))
        with contextlib.suppress(Exception):  # no cache: computed again next time
            cache.set(key, found, timeout=60)
    return found


def action_facts(rollout: Rollout, counts: dict, deployments=None) -> dict[str, dict]:
    """For each confirmable action: its title, what it does (lines) and its button."""
    totals = counts["totals"]
    version = rollout.release.version
    plan = rollback_plan(rollout, deployments)
    back = sum(n for n, _ in plan.values())
    back_lines = [
        f"{n} tenant(s) go back to {release}: {', '.join(slugs[:_NAMED])}"
        + (", …" if n > _NAMED else "")
        for release, (n, slugs) in plan.items()
    ]
    if rollout.status in (RolloutStatus.RUNNING, RolloutStatus.PAUSED, RolloutStatus.HALTED):
        back_lines.insert(0, f"Rollout #{rollout.pk} is cancelled first: nothing pending starts.")
    back_lines.append("Database migrations stay applied: the schema is not rolled back.")
    return {
        "cancel": {
            "title": f"Cancel rollout #{rollout.pk} of {version}?",
            "lines": [
                f"{totals['pending']} pending deployment(s) will not start.",
                f"{totals['running']} running deployment(s) finish; their tenants keep {version}.",
                f"{totals['succeeded']} tenant(s) already on {version} stay on it "
                "(Roll back undoes those).",
            ],
            "button": "Cancel the rollout",
            "keep": "Keep it running",
        },
        "rollback": {
            "title": f"Roll back {back} tenant(s) from {version}?",
            "lines": back_lines
            if back
            else ["No tenant of this rollout has an earlier release to go back to."],
            "choices": _rollback_choices(rollout, plan, deployments),
            "button": "Roll back",
            "keep": "Don't roll back",
        },
        "retry": {
            "title": f"Retry {totals['failed']} failed deployment(s) of {version}?",
            "lines": [
                f"{totals['failed']} tenant(s) are deployed {version} again from the first "
                "step (every step is safe to run twice).",
                "A halted rollout runs again.",
            ],
            "button": "Retry failed",
            "keep": "Don't retry",
        },
    }


# --- what the pages show ---------------------------------------------------------------


def rollout_rows(rollout: Rollout, deployments=None, *, status: str = "", wave: int | None = None):
    """The rollout's deployments (or ``deployments``, those a scoped user sees) for its
    page, in wave order, of ``status`` and ``wave`` when given: a narrow queryset to slice
    into pages (``rows_in_full`` reads a page's rows from their ids)."""
    rows = rollout.deployments if deployments is None else deployments
    if status:
        rows = rows.filter(status=status)
    if wave is not None:
        rows = rows.filter(wave=wave)
    return rows.order_by("wave", "position", "id")


def rows_in_full(ids) -> list[Deployment]:
    """A page of ``rollout_rows`` (the ids of a slice) with tenants and jobs, in one
    query: the database orders the narrow rows of 20,000 deployments, then joins only the
    page's. Each row gets ``live_step``: the label of its job's first unfinished step
    (running, waiting, failed or next), read in the same query, so the step a deployment
    is on is never written twice."""
    live_step = (
        JobStep.objects.filter(job_id=OuterRef("job_id"))
        .exclude(status__in=[StepStatus.SUCCEEDED, StepStatus.SKIPPED])
        .order_by("position")
        .values("label")[:1]
    )
    ids = list(ids)
    full = Deployment.objects.filter(pk__in=ids).select_related("tenant", "job")
    by_id = {row.pk: row for row in full.annotate(live_step=Subquery(live_step))}
    return [by_id[i] for i in ids if i in by_id]


def rollout_counts(rollout: Rollout, deployments=None) -> dict[str, Any]:
    """Counts by status and wave, over ``deployments`` (a scoped user's) when given: the
    waves' sizes are then theirs too, not the plan's."""
    source = rollout.deployments if deployments is None else deployments
    rows = list(source.values("wave", "status").annotate(n=Count("id")).order_by())
    sizes = list(rollout.wave_sizes)
    if deployments is not None:
        sizes = [0] * len(sizes)
        for row in rows:
            if row["wave"] < len(sizes):
                sizes[row["wave"]] += row["n"]
    totals = {s: 0 for s in DeploymentStatus.values}
    waves = [
        {"number": i + 1, "size": size, **{s: 0 for s in DeploymentStatus.values}}
        for i, size in enumerate(sizes)
    ]
    for row in rows:
        totals[row["status"]] += row["n"]
        if row["wave"] < len(waves):
            waves[row["wave"]][row["status"]] += row["n"]
    for wave in waves:
        done = sum(wave[s] for s in DEPLOYMENT_DONE)
        wave["done"] = done
        wave["percent"] = int(100 * done / wave["size"]) if wave["size"] else 100
        wave["ok_percent"] = int(100 * wave["succeeded"] / wave["size"]) if wave["size"] else 0
        wave["bad_percent"] = (
            int(100 * (wave["failed"] + wave["cancelled"]) / wave["size"]) if wave["size"] else 0
        )
    return {"totals": totals, "waves": waves, "total": sum(sizes)}


# The failures a finished rollout's summary and the live part list by name; the table,
# filtered by status, has them all.
FAILURES_LISTED = 20


def rollout_failures(rollout: Rollout, deployments=None) -> list[Deployment]:
    """The first failed deployments (in wave order), with their tenants: one query."""
    source = rollout.deployments if deployments is None else deployments
    return list(
        source.filter(status=DeploymentStatus.FAILED)
        .select_related("tenant")
        .order_by("wave", "position", "id")[:FAILURES_LISTED]
    )


def rollout_summary(rollout: Rollout, deployments=None) -> dict[str, Any]:
    """Which tenants run which release, among those this rollout targeted (and
    ``deployments`` holds, when given): counted by the database."""
    source = rollout.deployments if deployments is None else deployments
    releases: dict[str, int] = {}
    rows = (
        Tenant.objects.filter(pk__in=source.values("tenant_id"))
        .order_by()
        .values_list("current_release")
        .annotate(n=Count("id"))
    )
    for version, n in rows:
        releases[version or "(none)"] = releases.get(version or "(none)", 0) + n
    end = rollout.finished_at or timezone.now()
    return {
        "duration": end - rollout.created_at,
        "releases": sorted(releases.items(), key=lambda kv: -kv[1]),
    }


def list_counts(rollouts: list[Rollout], user) -> dict[int, dict[str, Any]]:
    """Each listed rollout's totals by status, in one query however many rollouts (over
    the deployments ``user`` may see, when scoped)."""
    scoped = user_is_scoped(user)
    rows = Deployment.objects.filter(rollout__in=[r.pk for r in rollouts])
    if scoped:
        rows = rows.filter(scope_filter(user, "tenant__"))
    counts = {
        r.pk: {
            "totals": dict.fromkeys(DeploymentStatus.values, 0),
            "total": 0 if scoped else sum(r.wave_sizes),
        }
        for r in rollouts
    }
    for row in rows.values("rollout_id", "status").annotate(n=Count("id")).order_by():
        entry = counts[row["rollout_id"]]
        entry["totals"][row["status"]] += row["n"]
        if scoped:
            entry["total"] += row["n"]
    return counts

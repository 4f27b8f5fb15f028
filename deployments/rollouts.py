"""Rollouts: target selection, waves, the preview, and the re-entrant orchestrator.

``rollout_advance`` is the whole scheduler. It locks the rollout row, brings deployment
rows up to date with their jobs, checks the wave's failure threshold, starts pending
deployments of the current wave up to ``max_parallel``, and moves to the next wave once
the current one is done and has baked. It runs after every deployment ends (a thin Celery
task) and from a beat entry; running it twice, or from two workers, does no harm.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from deployments import fleet_model, release_settings
from deployments.alias_rollback import JOB_KIND as ALIAS_BACK_KIND
from deployments.deploy_outcome import mark_succeeded
from deployments.models import (
    ROLLOUT_OPEN,
    Deployment,
    DeploymentStatus,
    Release,
    Rollout,
    RolloutMethod,
    RolloutStatus,
    Traffic,
)
from deployments.pipeline import JOB_KIND
from deployments.rollout_estimate import changes_configuration, estimate_for
from deployments.rollout_scope import target_refusal
from opsconsole.jobs.models import FINISHED as JOB_FINISHED
from opsconsole.jobs.models import JobStatus
from opsconsole.jobs.services import job_cancel, job_create_many
from opsconsole.webhooks import events as webhook_events
from opsconsole.webhooks.services import emit
from tenants.models import Tenant, TenantStatus

logger = logging.getLogger(__name__)


class RolloutRefused(ValueError):  # noqa: N818 - shown to the person
    pass


def default_max_parallel() -> int:
    """Enough slots that the Lambda budget, not max parallel, bounds a rollout: a
    deployment holds its slot for its whole chain of waits (fleet_model)."""
    return fleet_model.default_max_parallel(
        rate=settings.LAMBDA_CONTROL_RATE,
        chain=fleet_model.Chain(poll_s=settings.DEPLOY_UPDATE_POLL_S),
    )


@dataclass
class Strategy:
    max_parallel: int = 10
    canary_max_failures: int = 0
    wave_failure_pct: int = 10
    bake_s: int = 300
    traffic: str = Traffic.ALL_AT_ONCE
    canary_percent: int = 10
    canary_minutes: int = 10

    @classmethod
    def default(cls) -> Strategy:
        return cls(
            max_parallel=settings.ROLLOUT_DEFAULT_MAX_PARALLEL or default_max_parallel(),
            bake_s=settings.ROLLOUT_DEFAULT_BAKE_S,
        )


@dataclass
class Target:
    kind: str = "all"  # all | rings | tags | tenants
    values: list[Any] = field(default_factory=list)
    on_conflict: str = "wait"  # wait | skip: a tenant in another open rollout

    def describe(self) -> str:
        if self.kind == "all":
            return "every active tenant not on this release"
        return f"{self.kind}: {', '.join(str(v) for v in self.values)}"


# --- targets and waves -----------------------------------------------------------------


def select_targets(release: Release, target: Target) -> list[Tenant]:
    tenants = Tenant.objects.filter(status=TenantStatus.ACTIVE).order_by("ring", "slug")
    if target.kind == "all":
        tenants = tenants.exclude(current_release=release.version)
    elif target.kind == "rings":
        tenants = tenants.filter(ring__in=[int(v) for v in target.values])
    elif target.kind == "tags":
        query = Q()
        for value in target.values:
            key, _, wanted = str(value).partition("=")
            query |= Q(**{f"tags__{key.strip()}": wanted.strip()})
        tenants = tenants.filter(query) if target.values else tenants.none()
    elif target.kind == "tenants":
        tenants = tenants.filter(slug__in=[str(v) for v in target.values])
    else:
        raise RolloutRefused(f"Unknown target {target.kind!r}.")
    return list(tenants)


def plan_waves(tenants: list[Tenant]) -> list[list[Tenant]]:
    """Canary first (the ring-0 tenants, else one tenant), then 10%, then the rest."""
    if not tenants:
        return []
    ring0 = [t for t in tenants if t.ring == 0]
    canary = ring0 or tenants[:1]
    rest = [t for t in tenants if t not in canary]
    second = rest[: math.ceil(len(tenants) * 0.10)]
    third = rest[len(second) :]
    return [wave for wave in (canary, second, third) if wave]


def downgrades(release: Release, tenants: list[Tenant]) -> list[Tenant]:
    """Tenants that run a newer release than ``release`` (registered later)."""
    mine = (release.created_at, release.id)
    order = {
        r.version: (r.created_at, r.id)
        for r in Release.objects.filter(
            version__in={t.current_release for t in tenants if t.current_release}
        ).only("version", "created_at", "id")
    }
    return [t for t in tenants if t.current_release in order and order[t.current_release] > mine]


@dataclass
class Preview:
    waves: list[list[str]]
    estimate_s: int
    rate_bound_s: int
    chain_s: int
    calls: int  # Lambda control-plane calls in all
    downgrades: list[str]
    busy: dict[str, int]  # tenant slug -> the open rollout that holds it

    @property
    def total(self) -> int:
        return sum(len(w) for w in self.waves)


def _busy(tenants: list[Tenant], *, exclude: int | None = None) -> dict[str, int]:
    rows = Deployment.objects.filter(
        tenant__in=tenants,
        rollout__status__in=ROLLOUT_OPEN,
        status__in=[DeploymentStatus.PENDING, DeploymentStatus.RUNNING],
    )
    if exclude:
        rows = rows.exclude(rollout_id=exclude)
    return dict(rows.values_list("tenant__slug", "rollout_id"))


def rollout_preview(release: Release, target: Target, strategy: Strategy) -> Preview:
    tenants = select_targets(release, target)
    waves = plan_waves(tenants)
    est, rate_bound, chain, calls = estimate_for(
        waves,
        strategy,
        config_updates=changes_configuration(release, tenants),
    )
    return Preview(
        waves=[[t.slug for t in w] for w in waves],
        estimate_s=est,
        rate_bound_s=rate_bound,
        chain_s=chain,
        calls=calls,
        downgrades=[t.slug for t in downgrades(release, tenants)],
        busy=_busy(tenants),
    )


# --- start -----------------------------------------------------------------------------


def rollout_start(
    *,
    release: Release,
    target: Target,
    strategy: Strategy,
    created_by=None,
    confirm_downgrade: bool = False,
    rollback_of: Rollout | None = None,
    method: str = RolloutMethod.DEPLOY,
) -> Rollout:
    if strategy.max_parallel < 1:
        raise RolloutRefused("Max parallel must be at least 1.")
    if method == RolloutMethod.ALIAS and rollback_of is None:
        raise RolloutRefused("Only a roll back can move aliases back.")
    # A user limited to some tenants names those tenants: never all, a ring or a tag.
    refusal = target_refusal(created_by, target)
    if refusal:
        raise RolloutRefused(refusal)
    tenants = select_targets(release, target)
    if not tenants:
        raise RolloutRefused(f"No tenant to deploy to ({target.describe()}).")
    older = downgrades(release, tenants)
    if older and not confirm_downgrade:
        raise RolloutRefused(
            f"{release.version} is older than what {len(older)} tenant(s) run "
            f"({', '.join(t.slug for t in older[:5])}): confirm the downgrade."
        )
    if strategy.traffic == Traffic.CANARY:
        reformatted = release_settings.payload_format_changes(release, tenants)
        if reformatted:
            raise RolloutRefused(
                f"{release.version} changes the API's payload format for {len(reformatted)} "
                f"tenant(s) ({', '.join(reformatted[:5])}): a canary would send its share to "
                "the new code in the old format. Deploy it all at once."
            )
    waves = plan_waves(tenants)
    with transaction.atomic():
        busy = _busy(tenants)
        rollout = Rollout.objects.create(
            release=release,
            target=asdict(target),
            wave_sizes=[len(w) for w in waves],
            rollback_of=rollback_of,
            method=method,
            created_by=created_by if created_by and created_by.is_authenticated else None,
            **asdict(strategy),
        )
        rows = []
        for number, wave in enumerate(waves):
            for position, tenant in enumerate(wave):
                row = Deployment(
                    rollout=rollout,
                    tenant=tenant,
                    wave=number,
                    position=position,
                    from_release=tenant.current_release,
                )
                if tenant.slug in busy and target.on_conflict == "skip":
                    row.status = DeploymentStatus.SKIPPED
                    row.reason = f"in rollout #{busy[tenant.slug]}"
                rows.append(row)
        Deployment.objects.bulk_create(rows)
        emit(webhook_events.ROLLOUT_STARTED, webhook_events.rollout_payload(rollout))
        transaction.on_commit(lambda: _send_advance(rollout.pk))
    return rollout


def _send_advance(rollout_id: int) -> None:
    from deployments.tasks import rollout_advance_task

    try:
        rollout_advance_task.delay(rollout_id)
    except Exception:  # noqa: BLE001 - the beat entry advances it anyway
        logger.warning("Could not send rollout_advance for %s", rollout_id, exc_info=True)


# --- the orchestrator ------------------------------------------------------------------


def _sync(rollout: Rollout) -> None:
    """Running deployments whose job ended without its hook (cancelled, lost) catch up.

    A job that succeeded or failed moments ago has its hook running right now (a failed
    one's revert may take seconds): writing its deployment and tenant here too would race
    the hook (and deadlock with it), so those wait ROLLOUT_SYNC_GRACE_S. A cancelled job has
    no hook and catches up at once.
    """
    grace = timezone.now() - timedelta(seconds=settings.ROLLOUT_SYNC_GRACE_S)
    ended = (
        rollout.deployments.filter(status=DeploymentStatus.RUNNING, job__status__in=JOB_FINISHED)
        .filter(Q(job__status=JobStatus.CANCELLED) | Q(job__finished_at__lt=grace))
        .select_related("job")
    )
    for dep in ended:
        job = dep.job
        status = {
            JobStatus.SUCCEEDED: DeploymentStatus.SUCCEEDED,
            JobStatus.CANCELLED: DeploymentStatus.CANCELLED,
        }.get(job.status, DeploymentStatus.FAILED)
        if status == DeploymentStatus.SUCCEEDED:
            # The hook died before its writes: the tenant does run the release.
            mark_succeeded(
                dep.pk,
                version=rollout.release.version,
                finished_at=job.finished_at,
                only_running=True,
            )
            continue
        changed = Deployment.objects.filter(pk=dep.pk, status=DeploymentStatus.RUNNING).update(
            status=status, finished_at=job.finished_at or timezone.now(), reason=job.error[:2000]
        )
        if changed and status == DeploymentStatus.FAILED:
            payload = webhook_events.deployment_payload(
                dep, tenant_slug=dep.tenant.slug, release=rollout.release.version, reason=job.error
            )
            emit(webhook_events.DEPLOYMENT_FAILED, payload)


def _wave_counts(rollout: Rollout, wave: int) -> dict[str, int]:
    """One aggregate: running deployments (any wave), and the wave's size and failures."""
    failed = Q(wave=wave, status=DeploymentStatus.FAILED)
    if rollout.failures_acknowledged_at:
        failed &= Q(finished_at__gt=rollout.failures_acknowledged_at)
    return rollout.deployments.aggregate(
        running=Count("id", filter=Q(status=DeploymentStatus.RUNNING)),
        size=Count("id", filter=Q(wave=wave) & ~Q(status=DeploymentStatus.SKIPPED)),
        failures=Count("id", filter=failed),
    )


def _threshold_broken(rollout: Rollout, wave: int, counts: dict[str, int]) -> str:
    failures, size = counts["failures"], counts["size"]
    if wave == 0:
        if failures > rollout.canary_max_failures:
            return f"canary wave: {failures} failure(s), {rollout.canary_max_failures} allowed"
    elif size and failures * 100 > rollout.wave_failure_pct * size:
        return (
            f"wave {wave + 1}: {failures} of {size} failed, more than "
            f"{rollout.wave_failure_pct}% allowed"
        )
    return ""


def _first_failure(rollout: Rollout, wave: int) -> str:
    """The wave's first failure, in its own words (the app's status and body when its
    health check failed), for the halted rollout's reason."""
    first = (
        rollout.deployments.filter(wave=wave, status=DeploymentStatus.FAILED)
        .order_by("finished_at", "id")
        .values_list("tenant__slug", "reason")
        .first()
    )
    return f". First: {first[0]}: {first[1]}" if first else ""


def _start(rollout: Rollout, due: list[Deployment]) -> int:
    """Start these pending deployments: a ``tenant_deploy`` job each, saved in one batch.

    A tenant that is not active is skipped; one that another rollout is deploying to waits
    (or is skipped, with on_conflict=skip) and its row says which rollout holds it.
    """
    now = timezone.now()
    others = dict(
        Deployment.objects.filter(
            tenant_id__in=[d.tenant_id for d in due], status=DeploymentStatus.RUNNING
        )
        .exclude(rollout=rollout)
        .values_list("tenant_id", "rollout_id")
    )
    ready, held = [], []

    def hold(dep: Deployment, reason: str, *, skip: bool) -> None:
        if skip:
            dep.status, dep.finished_at = DeploymentStatus.SKIPPED, now
        elif dep.reason == reason:
            return  # already says so
        dep.reason = reason
        held.append(dep)

    for dep in due:
        other = others.get(dep.tenant_id)
        if dep.tenant.status != TenantStatus.ACTIVE:
            hold(dep, f"tenant is {dep.tenant.status}", skip=True)
        elif other and rollout.target.get("on_conflict") == "skip":
            hold(dep, f"in rollout #{other}", skip=True)
        elif other:
            hold(dep, f"waiting for rollout #{other}", skip=False)
        else:
            ready.append(dep)
    if held:
        Deployment.objects.bulk_update(held, ["status", "reason", "finished_at"])
    if not ready:
        return 0
    version = rollout.release.version
    jobs = job_create_many(
        kind=ALIAS_BACK_KIND if rollout.method == RolloutMethod.ALIAS else JOB_KIND,
        # "release" lets pages that only know jobs (the tenant's health history) say which.
        subjects=[
            (
                "tenant",
                dep.tenant.slug,
                {"deployment_id": dep.pk, "rollout_id": rollout.pk, "release": version},
            )
            for dep in ready
        ],
        created_by=rollout.created_by,
    )
    # One UPDATE for the batch, each row with its own job (bulk_update's CASE per row
    # costs more to build than the whole statement costs to run).
    pairs = ", ".join(["(%s::bigint, %s::bigint)"] * len(ready))
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE deployments_deployment AS d SET status = %s, started_at = %s, reason = '',"
            f" step = 'queued', job_id = v.job FROM (VALUES {pairs}) AS v(id, job)"
            " WHERE d.id = v.id",
            [DeploymentStatus.RUNNING, now]
            + [value for dep, job in zip(ready, jobs, strict=True) for value in (dep.pk, job.pk)],
        )
    for dep in ready:
        dep.status = DeploymentStatus.RUNNING  # what _fill looks at
    Tenant.objects.filter(pk__in=[d.tenant_id for d in ready]).update(desired_release=version)
    return len(ready)


_CELL = ("tenant__aws_account_id", "tenant__region")


def _fill(rollout: Rollout, wave: int, running: int) -> tuple[int, bool]:
    """Start pending deployments of waves up to ``wave`` into the free slots.

    ``max_parallel`` is per cell (an AWS account and region): each cell has its own Lambda
    budget, so each gets its own slots and every account's share advances at its own
    pace, none waiting for another's. Returns (how many started, whether pending ones are
    left).
    """
    cells = list(
        rollout.deployments.filter(wave__lte=wave, status=DeploymentStatus.PENDING)
        .values_list(*_CELL)
        .order_by(*_CELL)  # not the model's ordering: DISTINCT would count its columns
        .distinct()
    )
    if not cells:
        return 0, False
    if len(cells) == 1 and not _several_cells(rollout):
        return _fill_cell(rollout, wave, running, None)
    busy = {
        (row[_CELL[0]], row[_CELL[1]]): row["n"]
        for row in rollout.deployments.filter(status=DeploymentStatus.RUNNING)
        .values(*_CELL)
        .order_by(*_CELL)
        .annotate(n=Count("id"))
    }
    started, left = 0, False
    for cell in cells:
        n, more = _fill_cell(rollout, wave, busy.get(cell, 0), cell)
        started, left = started + n, left or more
    return started, left


def _several_cells(rollout: Rollout) -> bool:
    """Whether the rollout's tenants span more than one account or region (one query,
    stopping at the second cell)."""
    return len(rollout.deployments.values_list(*_CELL).order_by(*_CELL).distinct()[:2]) > 1


def _fill_cell(rollout: Rollout, wave: int, running: int, cell: tuple | None) -> tuple[int, bool]:
    """Fill one cell's free slots (``cell`` None: the rollout has only one)."""
    pending = rollout.deployments.filter(wave__lte=wave, status=DeploymentStatus.PENDING)
    if cell is not None:
        pending = pending.filter(**dict(zip(_CELL, cell, strict=True)))
    started = 0
    while True:
        free = rollout.max_parallel - running - started
        if free <= 0:
            return started, True
        due = list(pending.select_related("tenant").order_by("wave", "position")[:free])
        if not due:
            return started, False
        started += _start(rollout, due)
        if any(d.status == DeploymentStatus.PENDING for d in due):
            return started, True  # waiting for another rollout
        if len(due) < free:
            return started, False
        # Every slot was filled or skipped: there may be more pending ones to look at.


def rollout_advance(rollout_id: int, *, now=None) -> dict[str, Any]:
    """Look at the rows and do what is due. Safe to call any time, any number of times."""
    with transaction.atomic():
        rollout = (
            Rollout.objects.select_for_update(of=("self",))
            .select_related("release", "created_by")
            .filter(pk=rollout_id)
            .first()
        )
        if rollout is None:
            return {"rollout": rollout_id, "missing": True}
        now = now or timezone.now()
        _sync(rollout)
        started = 0
        counts = _wave_counts(rollout, rollout.current_wave)
        running = counts["running"]
        if rollout.status == RolloutStatus.CANCELLING and not running:
            rollout.status, rollout.finished_at = RolloutStatus.CANCELLED, now
            rollout.save(update_fields=["status", "finished_at"])
            emit(webhook_events.ROLLOUT_FINISHED, webhook_events.rollout_payload(rollout))
        while rollout.status == RolloutStatus.RUNNING:
            wave = rollout.current_wave
            broken = _threshold_broken(rollout, wave, counts)
            if broken:
                reason = f"Halted: {broken}{_first_failure(rollout, wave)}"
                rollout.status, rollout.status_reason = RolloutStatus.HALTED, reason[:500]
                rollout.save(update_fields=["status", "status_reason"])
                emit(webhook_events.ROLLOUT_HALTED, webhook_events.rollout_payload(rollout))
                break
            n, pending_left = _fill(rollout, wave, running)
            started += n
            running += n
            # Only deployments of waves up to the current one ever run, so a running or a
            # pending one means the wave is still open.
            if running or pending_left:
                break
            if wave + 1 >= len(rollout.wave_sizes):
                rollout.status, rollout.finished_at = RolloutStatus.SUCCEEDED, now
                rollout.status_reason = ""
                rollout.save(update_fields=["status", "finished_at", "status_reason"])
                emit(webhook_events.ROLLOUT_FINISHED, webhook_events.rollout_payload(rollout))
                break
            if rollout.wave_finished_at is None:
                rollout.wave_finished_at = now
                rollout.save(update_fields=["wave_finished_at"])
            # The wave's deployments watched the first part of its bake themselves.
            if now - rollout.wave_finished_at < timedelta(seconds=rollout.pause_after_s(wave)):
                break
            rollout.current_wave, rollout.wave_finished_at = wave + 1, None
            rollout.save(update_fields=["current_wave", "wave_finished_at"])
            counts = _wave_counts(rollout, rollout.current_wave)
    return {"rollout": rollout_id, "status": rollout.status, "started": started}


def rollouts_advance_all() -> int:
    ids = list(
        Rollout.objects.filter(
            status__in=[RolloutStatus.RUNNING, RolloutStatus.CANCELLING]
        ).values_list("pk", flat=True)
    )
    for rollout_id in ids:
        rollout_advance(rollout_id)
    return len(ids)


# --- operator actions ------------------------------------------------------------------


def rollout_pause(rollout: Rollout) -> bool:
    """No new deployment starts; running ones finish."""
    return bool(
        Rollout.objects.filter(pk=rollout.pk, status=RolloutStatus.RUNNING).update(
            status=RolloutStatus.PAUSED, status_reason="Paused by an operator."
        )
    )


def rollout_resume(rollout: Rollout) -> bool:
    """Continue a paused rollout, or a halted one (its failures so far are accepted)."""
    with transaction.atomic():
        changed = Rollout.objects.filter(
            pk=rollout.pk, status__in=[RolloutStatus.PAUSED, RolloutStatus.HALTED]
        ).update(
            status=RolloutStatus.RUNNING, status_reason="", failures_acknowledged_at=timezone.now()
        )
        if changed:
            transaction.on_commit(lambda: _send_advance(rollout.pk))
    return bool(changed)


def rollout_cancel(rollout: Rollout) -> bool:
    """In-flight deployments finish; none of the pending ones start."""
    with transaction.atomic():
        changed = Rollout.objects.filter(pk=rollout.pk, status__in=ROLLOUT_OPEN).update(
            status=RolloutStatus.CANCELLING, status_reason="Cancelled by an operator."
        )
        if not changed:
            return False
        rollout.deployments.filter(status=DeploymentStatus.PENDING).update(
            status=DeploymentStatus.CANCELLED,
            reason="rollout cancelled",
            finished_at=timezone.now(),
        )
        transaction.on_commit(lambda: _send_advance(rollout.pk))
    rollout_advance(rollout.pk)
    return True


def rollout_retry_failed(rollout: Rollout) -> int:
    """Failed deployments start again from the beginning (every step is idempotent)."""
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().get(pk=rollout.pk)
        if locked.status in (RolloutStatus.CANCELLED, RolloutStatus.CANCELLING):
            return 0
        count = locked.deployments.filter(status=DeploymentStatus.FAILED).update(
            status=DeploymentStatus.PENDING,
            job=None,
            reason="",
            step="",
            to_version="",
            canary_started_at=None,
            started_at=None,
            finished_at=None,
        )
        if locked.status == RolloutStatus.SUCCEEDED and count:
            # The failed tenants are in earlier waves: the rollout runs again for them.
            locked.status, locked.finished_at = RolloutStatus.RUNNING, None
        if locked.status == RolloutStatus.HALTED:
            locked.status, locked.status_reason = RolloutStatus.RUNNING, ""
        locked.save(update_fields=["status", "status_reason", "finished_at"])
        transaction.on_commit(lambda: _send_advance(rollout.pk))
    return count


def cancel_running_jobs(rollout: Rollout) -> int:
    """Hard stop (not used by Cancel, which lets in-flight deployments finish)."""
    n = 0
    for dep in rollout.deployments.filter(status=DeploymentStatus.RUNNING).select_related("job"):
        if dep.job and job_cancel(dep.job):
            n += 1
    return n

"""Start a rollout from a script and, with ``--wait``, follow it to its end: the exit
status is 0 only when it succeeded (1 when it halted, failed or was cancelled, 2 when
``--timeout`` passed first), so a CI job fails with it."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from deployments import rollout_display, rollouts
from deployments.management.commands._actor import command_user
from deployments.models import Release, Rollout, RolloutStatus
from deployments.rollouts import RolloutRefused, Strategy, Target
from opsconsole.accounts.models import Role
from opsconsole.audit.services import audit_record


class Command(BaseCommand):
    help = "Start a rollout of VERSION; --wait follows it and fails when it does."

    def add_arguments(self, parser):
        parser.add_argument("version")
        parser.add_argument("--user", required=True, help="The operator it acts as (audit).")
        parser.add_argument("--target", default="all", choices=["all", "rings", "tags", "tenants"])
        parser.add_argument("--values", nargs="*", default=[], help="rings, key=value or slugs")
        parser.add_argument("--on-conflict", default="wait", choices=["wait", "skip"])
        parser.add_argument("--max-parallel", type=int)
        parser.add_argument("--bake-s", type=int)
        parser.add_argument("--confirm-downgrade", action="store_true")
        parser.add_argument("--wait", action="store_true", help="Follow it to its end.")
        parser.add_argument("--timeout", type=int, default=3600, help="seconds (with --wait)")
        parser.add_argument("--poll", type=float, default=5.0, help=None)

    def handle(self, *args, **o):
        user = command_user(o["user"], Role.OPERATOR)
        release = Release.objects.filter(version=o["version"]).first()
        if release is None:
            raise CommandError(f"No release {o['version']}.")
        strategy = Strategy.default()
        if o["max_parallel"] is not None:
            strategy.max_parallel = o["max_parallel"]
        if o["bake_s"] is not None:
            strategy.bake_s = o["bake_s"]
        target = Target(kind=o["target"], values=o["values"], on_conflict=o["on_conflict"])
        try:
            rollout = rollouts.rollout_start(
                release=release,
                target=target,
                strategy=strategy,
                created_by=user,
                confirm_downgrade=o["confirm_downgrade"],
            )
        except RolloutRefused as exc:
            raise CommandError(str(exc)) from exc
        audit_record(request=None, action="rollout.start", obj=rollout, actor=user, via="command")
        self.stdout.write(
            f"Rollout #{rollout.pk} of {release.version}: {sum(rollout.wave_sizes)} tenants in "
            f"waves of {rollout.wave_sizes}."
        )
        if o["wait"]:
            raise SystemExit(self._follow(rollout.pk, o["timeout"], o["poll"]))

    def _follow(self, rollout_id: int, timeout: int, poll: float) -> int:
        deadline = time.monotonic() + timeout
        last = None
        while True:
            rollout = Rollout.objects.get(pk=rollout_id)
            totals = rollout_display.rollout_counts(rollout)["totals"]
            line = (
                f"{rollout.status}: {totals['succeeded']} succeeded, {totals['failed']} failed, "
                f"{totals['running']} running, {totals['pending']} pending"
            )
            if line != last:
                self.stdout.write(line)
                last = line
            if rollout.status == RolloutStatus.SUCCEEDED:
                return 0
            if rollout.status in (RolloutStatus.HALTED, RolloutStatus.CANCELLED):
                self.stderr.write(
                    f"Rollout #{rollout_id} {rollout.status}: {rollout.status_reason}"
                )
                for dep in rollout.deployments.filter(status="failed").select_related("tenant"):
                    self.stderr.write(f"  {dep.tenant.slug}: {dep.reason}")
                return 1
            if time.monotonic() > deadline:
                self.stderr.write(
                    f"Rollout #{rollout_id} still {rollout.status} after {timeout} s."
                )
                return 2
            time.sleep(poll)

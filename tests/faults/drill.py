"""The fault drills' harness: onboard tenants and roll a release out to them on real
workers and the local AWS while something breaks, then check what the records and AWS
say. One row per scenario for the table the test run prints at its end.

The checks, from the records and from AWS, never from what the drill meant to do:

- lost: a tenant not active, or a deployment of the rollout not succeeded, once the
  drill's deadline has passed;
- duplicated: a resource AWS holds twice for one tenant (APIs, roles, secrets, alarms), or
  more function versions than deployments published;
- stuck: a job still unfinished at the end, or a step run left open by a worker that was
  never killed;
- ran twice: two StepRun rows of one step that overlap in time (a run whose worker was
  killed ended when the drill killed it).
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass, field

from deployments.models import DeploymentStatus, Release, Rollout, RolloutStatus
from deployments.rollouts import Strategy, Target, rollout_start
from opsconsole.aws.clients import client as aws
from opsconsole.jobs.models import FINISHED, Job, StepRun
from tenants import naming
from tenants.models import Tenant, TenantStatus
from tests.integration.demo_support import onboard, tagged

ROWS: list[Row] = []  # printed by tests/faults/conftest.py at the end of the run
FROM_RELEASE = "2026.11.0-demo"
TO_RELEASE = "2026.12.0-demo"


@dataclass
class Row:
    scenario: str
    runs: int = 0
    tenants: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    ran_twice: int = 0
    converge_s: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.stuck or self.ran_twice)

    def add(self, run: RunResult) -> None:
        self.runs += 1
        self.tenants += run.tenants
        self.lost += len(run.lost)
        self.duplicated += len(run.duplicated)
        self.stuck += len(run.stuck)
        self.ran_twice += len(run.ran_twice)
        self.converge_s.append(run.converge_s)
        for what, found in (
            ("lost", run.lost),
            ("duplicated", run.duplicated),
            ("stuck", run.stuck),
            ("ran twice", run.ran_twice),
        ):
            self.problems += [f"run {self.runs} {what}: {item}" for item in found]


@dataclass
class RunResult:
    tenants: int
    converge_s: float
    lost: list[str]
    duplicated: list[str]
    stuck: list[str]
    ran_twice: list[str]


def arm_faults(endpoint: str, **body) -> dict:
    """Arm the local AWS's faults (opsconsole/sandbox/localaws/faults.py)."""
    request = urllib.request.Request(  # noqa: S310 - the local AWS
        f"{endpoint}/_localaws/faults", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return json.loads(answer.read())


def disarm_faults(endpoint: str) -> dict:
    request = urllib.request.Request(f"{endpoint}/_localaws/faults", method="DELETE")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return json.loads(answer.read())


class Drill:
    """One scenario's runs. ``kills`` maps a killed worker's process ids to when the drill
    killed it: a run those processes left open ended then."""

    def __init__(self, browser, *, scenario: str, prefix: str) -> None:
        self.browser = browser
        self.row = Row(scenario)
        self.prefix = tagged(prefix)  # tenant databases of their own (see SLUG_TAG)
        self.kills: dict[int, float] = {}
        self.to_release = TO_RELEASE
        self.slugs: list[str] = []  # the current run's tenants, for a scenario's tick

    def onboard(self, run: int, count: int) -> list[str]:
        slugs = [f"{self.prefix}{run}-{n}" for n in range(count)]
        self.slugs = slugs
        for n, slug in enumerate(slugs):
            onboard(self.browser, slug, release=FROM_RELEASE, ring=0 if n == 0 else 1)
        return slugs

    def roll_out(self, slugs: list[str]) -> Rollout:
        return rollout_start(
            release=Release.objects.get(version=self.to_release),
            target=Target(kind="tenants", values=slugs),
            strategy=Strategy(max_parallel=len(slugs), bake_s=0),
        )

    def wait(self, slugs: list[str], *, timeout: float, tick=None) -> Rollout | None:
        """Until every tenant is active and its rollout has ended (``tick`` is called
        every half second: the scenario's chance to break something)."""
        deadline = time.monotonic() + timeout
        rollout = None
        while time.monotonic() < deadline:
            if tick:
                tick()
            tenants = list(Tenant.objects.filter(slug__in=slugs).values_list("status", flat=True))
            settled = len(tenants) == len(slugs) and all(
                s in (TenantStatus.ACTIVE, TenantStatus.FAILED) for s in tenants
            )
            if settled and rollout is None:
                if all(s == TenantStatus.ACTIVE for s in tenants):
                    rollout = self.roll_out(slugs)
                else:
                    return None
            if rollout is not None:
                rollout.refresh_from_db()
                if rollout.status in (
                    RolloutStatus.SUCCEEDED,
                    RolloutStatus.HALTED,
                    RolloutStatus.CANCELLED,
                ):
                    return rollout
            time.sleep(0.5)
        return rollout

    def check(
        self,
        slugs: list[str],
        rollout: Rollout | None,
        started: float,
        *,
        failed_ok: bool = False,
    ) -> RunResult:
        """With ``failed_ok`` a deployment that failed cleanly counts as accounted for
        (the fault took its tenant's resources away under it): it ended, and its tenant
        serves the release its record says, checked on the Lambda alias."""
        converge = time.monotonic() - started
        lost = [
            f"{t.slug} is {t.status} ({t.status_reason})"
            for t in Tenant.objects.filter(slug__in=slugs)
            if t.status != TenantStatus.ACTIVE
        ]
        if rollout is None:
            lost.append("no rollout ran: onboarding did not end")
        else:
            accepted = {DeploymentStatus.SUCCEEDED}
            if failed_ok:
                accepted.add(DeploymentStatus.FAILED)
                if rollout.status == RolloutStatus.HALTED:
                    # Never started: the rollout halted before their wave.
                    accepted.add(DeploymentStatus.PENDING)
            lost += [
                f"deployment to {d.tenant.slug} is {d.status} at {d.step}: {d.reason}"
                for d in rollout.deployments.select_related("tenant")
                if d.status not in accepted
            ]
            if failed_ok:
                lost += self._serving_other_release(slugs)
        jobs = Job.objects.filter(subject_id__in=slugs)
        stuck = [f"{j} is {j.status}" for j in jobs if j.status not in FINISHED]
        ran_twice, open_runs = self._overlaps(slugs)
        stuck += open_runs
        return RunResult(
            tenants=len(slugs),
            converge_s=converge,
            lost=lost,
            duplicated=self._duplicates(slugs),
            stuck=stuck,
            ran_twice=ran_twice,
        )

    def _serving_other_release(self, slugs: list[str]) -> list[str]:
        """Tenants whose alias 'live' serves another release than the console records."""
        found = []
        for tenant in Tenant.objects.filter(slug__in=slugs):
            function = naming.function_name(tenant.slug)
            try:
                alias = aws("lambda").get_alias(FunctionName=function, Name=naming.ALIAS)
                version = aws("lambda").get_function_configuration(
                    FunctionName=function, Qualifier=alias["FunctionVersion"]
                )
            except aws("lambda").exceptions.ResourceNotFoundException:
                found.append(f"{tenant.slug}: no function or alias {naming.ALIAS} in AWS")
                continue
            wanted = f"release {tenant.current_release}"
            if version.get("Description") != wanted:
                found.append(
                    f"{tenant.slug}: {naming.ALIAS} serves {version.get('Description')!r}, "
                    f"the console records {wanted!r}"
                )
        return found

    def _overlaps(self, slugs: list[str]) -> tuple[list[str], list[str]]:
        runs: dict[int, list[StepRun]] = {}
        for run in StepRun.objects.filter(step__job__subject_id__in=slugs).select_related(
            "step__job"
        ):
            runs.setdefault(run.step_id, []).append(run)
        twice, open_runs = [], []
        for step_runs in runs.values():
            step_runs.sort(key=lambda r: r.started_at)
            for before, after in zip(step_runs, step_runs[1:], strict=False):
                end = self._ended(before)
                if end is None:
                    open_runs.append(f"{before.step} by {before.owner} never ended")
                elif after.started_at.timestamp() < end:
                    twice.append(
                        f"{before.step}: {after.owner} started while {before.owner} still ran"
                    )
            last = step_runs[-1]
            if self._ended(last) is None:
                open_runs.append(f"{last.step} by {last.owner} never ended")
        return twice, open_runs

    def _ended(self, run: StepRun) -> float | None:
        if run.ended_at is not None:
            return run.ended_at.timestamp()
        pid = int(run.owner.rsplit(":", 1)[-1])
        return self.kills.get(pid)

    def _duplicates(self, slugs: list[str]) -> list[str]:
        found = []
        apis = [a["Name"] for a in aws("apigatewayv2").get_apis()["Items"]]
        roles = [r["RoleName"] for r in aws("iam").list_roles()["Roles"]]
        secrets = [s["Name"] for s in aws("secretsmanager").list_secrets()["SecretList"]]
        for slug in slugs:
            for what, names, name in (
                ("HTTP APIs", apis, naming.api_name(slug)),
                ("roles", roles, naming.role_name(slug)),
                ("secrets", secrets, naming.db_secret_name(slug)),
            ):
                if names.count(name) > 1:
                    found.append(f"{slug}: {names.count(name)} {what} named {name}")
            function = naming.function_name(slug)
            alarms = aws("cloudwatch").describe_alarms(AlarmNamePrefix=function)["MetricAlarms"]
            if len(alarms) > 5:
                found.append(f"{slug}: {len(alarms)} alarms")
            versions = [
                v["Version"]
                for v in aws("lambda").list_versions_by_function(FunctionName=function)["Versions"]
                if v["Version"] != "$LATEST"
            ]
            # One version published by the onboarding, one by the deployment.
            if len(versions) > 2:
                found.append(f"{slug}: {len(versions)} versions published ({versions})")
        return found

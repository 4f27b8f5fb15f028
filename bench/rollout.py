"""bench rollout: one release to 1,000 tenants under a model of real AWS.

The console side is real: Rollout, Deployment and Job rows in PostgreSQL, the
``tenant_deploy`` job steps, ``rollout_advance``, and the shared Lambda rate budget in
Redis. Celery is replaced by an in-process scheduler (a heap of due tasks and
``--workers`` threads, each with its own database connection), so one process holds
every worker; its RSS is the figure reported.

AWS is a model installed in front of the pipeline (this file only): every call takes
``--latency`` (100 ms); a function update stays ``InProgress`` for ``--update-s`` (5 s)
before it is ``Successful``; Lambda's control plane (UpdateFunctionConfiguration,
UpdateFunctionCode, PublishVersion, UpdateAlias, GetAlias) admits 15 calls in any one
second and throttles the rest (ThrottlingException reaches the caller: counted as
``throttled``). GetFunction, S3, CloudWatch, the health invoke and the migration run are
modelled as one plain call each. Functions, versions and aliases live in the model.

The bound is the larger of (control-plane calls / 15) and one tenant's own chain of waits
(its calls x latency + its function updates x the update time). The new release keeps the
function's settings, so a deployment is one code update; ``--config-change`` makes it
change the memory size too (a configuration update first, then the code). The sequential
figure runs the same job steps tenant after tenant (sleeping through every wait, like the
old CI loop) on ``--sample`` tenants and scales it to the fleet.

Rows are ``brl-*`` tenants and ``bench-rollout-*`` releases in the console's database
(DATABASE_URL, migrated); they are deleted at the end (and at the start, after an
interrupted run). Redis (REDIS_URL) holds the rate budget under a key of the run's own.

    python bench/rollout.py [--tenants 1000] [--sample 50] [--workers 30] [--parallel 250]

The last line is the summary: ``bench rollout: tenants=N wall_s=N bound_s=N
ratio_to_bound=N sequential_s=N speedup_vs_sequential=N throttled=N cpu_ms_per_tenant=N
worker_rss_mb=N``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import heapq
import itertools
import os
import resource
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from deployments import artifacts, pipeline, rollout_display, rollouts, tasks  # noqa: E402
from deployments.models import Deployment, DeploymentStatus, Release, Rollout  # noqa: E402
from deployments.tenant_release import DeploymentsReleaseSource  # noqa: E402
from opsconsole.aws.errors import AwsError  # noqa: E402
from opsconsole.jobs import runner as job_runner  # noqa: E402
from opsconsole.jobs import services as job_services  # noqa: E402
from opsconsole.jobs import tasks as job_tasks  # noqa: E402
from opsconsole.jobs.models import Job  # noqa: E402
from tenants.models import Tenant, TenantStatus  # noqa: E402
from tenants.provisioning import function as fn  # noqa: E402

PREFIX = "brl-"
RELEASE_PREFIX = "bench-rollout-"
CONTROL_LIMIT = 15


class LambdaModel:
    """Lambda (and the other calls a deployment makes) as real AWS behaves, in process."""

    def __init__(self, *, latency: float, update_s: float) -> None:
        self.latency = latency
        self.update_s = update_s
        self.lock = threading.Lock()
        self.window: deque[float] = deque()
        self.control_calls = 0
        self.other_calls = 0
        self.updates = 0
        self.throttled = 0
        self.functions: dict[str, dict] = {}
        self.code_by_key: dict[str, str] = {}

    # -- accounting -------------------------------------------------------------------
    def _plain(self) -> None:
        with self.lock:
            self.other_calls += 1
        time.sleep(self.latency)

    def _control(self, operation: str) -> None:
        with self.lock:
            now = time.monotonic()
            while self.window and self.window[0] <= now - 1.0:
                self.window.popleft()
            if len(self.window) >= CONTROL_LIMIT:
                self.throttled += 1
                raise AwsError(
                    "Rate exceeded",
                    code="TooManyRequestsException",
                    operation=operation,
                    permanent=False,
                )
            self.window.append(now)
            self.control_calls += 1
        time.sleep(self.latency)

    # -- state ------------------------------------------------------------------------
    def add_function(self, name: str, *, code: str) -> None:
        self.functions[name] = {
            "code": code,
            "config": {
                "MemorySize": 256,
                "Timeout": 30,
                "Runtime": "python3.12",
                "Handler": "app.handler",
                "Environment": {"Variables": {"TENANT_SLUG": name}},
            },
            "done_at": 0.0,
            "versions": 1,
            "alias": "1",
        }

    def _configuration(self, name: str) -> dict:
        f = self.functions[name]
        busy = time.monotonic() < f["done_at"]
        return {
            **f["config"],
            "FunctionName": name,
            "FunctionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
            "CodeSha256": f["code"],
            "State": "Active",
            "LastUpdateStatus": "InProgress" if busy else "Successful",
        }

    def _start_update(self, name: str, operation: str) -> dict:
        f = self.functions[name]
        if time.monotonic() < f["done_at"]:
            raise AwsError(
                "An update is in progress",
                code="ResourceConflictException",
                operation=operation,
                permanent=False,
            )
        f["done_at"] = time.monotonic() + self.update_s
        with self.lock:
            self.updates += 1
        return f

    # -- the opsconsole.aws.lambda_ functions the pipeline uses ------------------------
    def get_function(self, *, name, region=None):
        self._plain()
        return {"Configuration": self._configuration(name), "Code": {}}

    def get_function_at(self, *, name, qualifier, region=None):
        self._plain()
        return {"Configuration": {"Version": self.functions[name]["alias"]}}

    def update_configuration(self, *, name, changes, region=None):
        self._control("UpdateFunctionConfiguration")
        f = self._start_update(name, "UpdateFunctionConfiguration")
        f["config"].update(changes)
        return self._configuration(name)

    def update_code(self, *, name, code, region=None):
        self._control("UpdateFunctionCode")
        f = self._start_update(name, "UpdateFunctionCode")
        f["code"] = self.code_by_key[code["S3Key"]]
        return self._configuration(name)

    def publish_version(self, *, name, code_sha256=None, description="", region=None):
        self._control("PublishVersion")
        f = self.functions[name]
        f["versions"] += 1
        return {"Version": str(f["versions"])}

    def get_alias(self, *, function, alias, region=None):
        self._control("GetAlias")
        return {"FunctionVersion": self.functions[function]["alias"], "RoutingConfig": {}}

    def update_alias(self, *, function, alias, version, weights=None, region=None):
        self._control("UpdateAlias")
        self.functions[function]["alias"] = version
        return {"AliasArn": f"arn:aws:lambda:::function:{function}:{alias}"}


class Scheduler:
    """Celery stand-in: due tasks on a heap, run by worker threads."""

    def __init__(self, workers: int) -> None:
        self.heap: list = []
        self.cond = threading.Condition()
        self.seq = itertools.count()
        self.stop = False
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def send(self, kind: str, arg: int, countdown: float = 0) -> None:
        with self.cond:
            heapq.heappush(
                self.heap, (time.monotonic() + (countdown or 0), next(self.seq), kind, arg)
            )
            self.cond.notify()

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.stop and (not self.heap or self.heap[0][0] > time.monotonic()):
                    timeout = self.heap[0][0] - time.monotonic() if self.heap else 0.5
                    self.cond.wait(max(0.001, min(timeout, 0.5)))
                if self.stop:
                    break
                _, _, kind, arg = heapq.heappop(self.heap)
            try:
                if kind == "job":
                    result = job_runner.job_execute(arg)
                    if result == "busy":
                        self.send("job", arg, countdown=1)
                else:
                    rollouts.rollout_advance(arg)
            except Exception as exc:  # noqa: BLE001 - a bench keeps going and reports
                print(f"worker error in {kind} {arg}: {exc!r}", file=sys.stderr)
        connection.close()


def install(model: LambdaModel, scheduler: Scheduler | None, *, memory_mb: int) -> None:
    from opsconsole.aws import cloudwatch, lambda_
    from tenants.provisioning.health_check import HealthAnswer

    for attr in (
        "get_function",
        "get_function_at",
        "update_configuration",
        "update_code",
        "publish_version",
        "get_alias",
        "update_alias",
    ):
        setattr(lambda_, attr, getattr(model, attr))

    def desired_configuration(tenant, artifact):
        # What fn.desired_configuration asks for, without the role and network lookups.
        return {
            "MemorySize": memory_mb,
            "Timeout": 30,
            "Runtime": artifact.runtime,
            "Handler": artifact.handler,
            "Environment": {"Variables": {"TENANT_SLUG": f"opsconsole-{tenant.slug}"}},
        }

    fn.desired_configuration = desired_configuration
    artifacts.ensure_artifact_in_region = lambda release, region: (model._plain(), {})[1]
    pipeline.health_check = lambda tenant, spec, qualifier: (
        model._plain(),
        HealthAnswer(True, "GET /healthz answered 200", status=200),
    )[1]
    cloudwatch.describe_alarms = lambda names, region=None: (model._plain(), {})[1]
    DeploymentsReleaseSource.apply_schema = lambda self, tenant, version, on_status: (
        model._plain(),
        {"schema_version": 1},
    )[1]
    if scheduler is not None:
        job_tasks.job_run.apply_async = lambda args, countdown=None: scheduler.send(
            "job", args[0], countdown or 0
        )
        tasks.rollout_advance_task.delay = lambda rollout_id: scheduler.send("advance", rollout_id)
        tasks.rollout_advance_task.apply_async = lambda args, countdown=None: scheduler.send(
            "advance", args[0], countdown or 0
        )


def cleanup() -> None:
    Job.objects.filter(subject_type="tenant", subject_id__startswith=PREFIX).delete()
    Rollout.objects.filter(release__version__startswith=RELEASE_PREFIX).delete()
    Tenant.objects.filter(slug__startswith=PREFIX).delete()
    Release.objects.filter(version__startswith=RELEASE_PREFIX).delete()


def make_release(version: str, model: LambdaModel) -> Release:
    sha = hashlib.sha256(version.encode()).hexdigest()
    key = f"releases/sha256/{sha}.zip"
    model.code_by_key[key] = base64.b64encode(bytes.fromhex(sha)).decode()
    return Release.objects.create(
        version=version,
        artifact_type="zip",
        zip_bucket="bench",
        zip_key=key,
        zip_sha256=sha,
        runtime="python3.12",
        handler="app.handler",
    )


def make_tenants(n: int, *, old: Release, model: LambdaModel, tag: str) -> list[Tenant]:
    tenants = Tenant.objects.bulk_create(
        Tenant(
            name=f"Bench {i}",
            slug=f"{PREFIX}{tag}{i:05d}",
            region="us-east-1",
            ring=0 if i == 0 else 1,
            status=TenantStatus.ACTIVE,
            current_release=old.version,
            desired_release=old.version,
        )
        for i in range(n)
    )
    for t in tenants:
        model.add_function(f"opsconsole-{t.slug}", code=model.code_by_key[old.zip_key])
    return tenants


def sequential(sample: int, *, old: Release, new: Release, model: LambdaModel) -> float:
    """The same steps, one tenant after the other, sleeping through every wait."""
    tenants = make_tenants(sample, old=old, model=model, tag="s")
    rollout = rollouts.rollout_start(
        release=new,
        target=rollouts.Target(kind="tenants", values=[t.slug for t in tenants]),
        strategy=rollouts.Strategy(max_parallel=1, bake_s=0),
    )
    start = time.monotonic()
    for dep in rollout.deployments.order_by("wave", "position"):
        dep.status = DeploymentStatus.RUNNING
        job = job_services.job_create(
            kind=pipeline.JOB_KIND,
            subject_type="tenant",
            subject_id=dep.tenant.slug,
            params={"deployment_id": dep.pk},
            unique=False,
        )
        dep.job = job
        dep.save(update_fields=["status", "job"])
        while True:
            job_runner.job_execute(job.pk, owner="bench-seq")
            job.refresh_from_db()
            if job.is_finished:
                break
            wait = (job.run_after - timezone.now()).total_seconds() if job.run_after else 0
            time.sleep(max(0.0, wait))
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=50)
    parser.add_argument("--workers", type=int, default=30)
    parser.add_argument("--parallel", type=int, default=250)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--update-s", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=14.0, help="budget refill, requests/s")
    parser.add_argument("--burst", type=float, default=1.0)
    parser.add_argument(
        "--config-change",
        action="store_true",
        help="the new release also changes the function's settings (one more update each)",
    )
    args = parser.parse_args()

    settings.RATE_BUDGET_PREFIX = f"bench-rollout-{uuid.uuid4().hex[:8]}"
    settings.LAMBDA_CONTROL_RATE = args.rate
    settings.LAMBDA_CONTROL_BURST = args.burst
    settings.LAMBDA_BUDGET_WAIT_S = 600
    settings.DEPLOY_UPDATE_POLL_S = max(1, round(args.update_s))
    pipeline._budget.cache_clear()

    cleanup()
    model = LambdaModel(latency=args.latency, update_s=args.update_s)
    scheduler = Scheduler(args.workers)
    install(model, scheduler, memory_mb=512 if args.config_change else 256)
    old = make_release(f"{RELEASE_PREFIX}old", model)
    new = make_release(f"{RELEASE_PREFIX}new", model)
    try:
        make_tenants(args.tenants, old=old, model=model, tag="f")
        scheduler.start()
        cpu0, t0 = time.process_time(), time.monotonic()
        rollout = rollouts.rollout_start(
            release=new,
            target=rollouts.Target(
                kind="tenants", values=[f"{PREFIX}f{i:05d}" for i in range(args.tenants)]
            ),
            strategy=rollouts.Strategy(max_parallel=args.parallel, bake_s=0),
        )
        scheduler.send("advance", rollout.pk)
        last_beat = time.monotonic()
        status = Rollout.objects.filter(pk=rollout.pk).values_list("status", flat=True)
        while True:
            time.sleep(1)
            if status.first() in ("succeeded", "cancelled", "halted"):
                break
            if time.monotonic() - last_beat > 10:  # the beat entry
                scheduler.send("advance", rollout.pk)
                last_beat = time.monotonic()
        wall = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        rollout.refresh_from_db()
        scheduler.stop = True
        with scheduler.cond:
            scheduler.cond.notify_all()
        for t in scheduler.threads:
            t.join(timeout=5)
        counts = rollout_display.rollout_counts(rollout)["totals"]
        failed = list(
            Deployment.objects.filter(rollout=rollout, status="failed").values_list(
                "reason", flat=True
            )[:3]
        )
        control_calls, other_calls, throttled = (
            model.control_calls,
            model.other_calls,
            model.throttled,
        )
        per_tenant_calls = (control_calls + other_calls) / args.tenants
        updates_per_tenant = model.updates / args.tenants
        chain = per_tenant_calls * args.latency + updates_per_tenant * args.update_s
        bound = max(control_calls / CONTROL_LIMIT, chain)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        seq_sample_s = sequential(args.sample, old=old, new=new, model=model)
        seq = seq_sample_s / args.sample * args.tenants
        print(f"rollout status={rollout.status} counts={counts} first failures={failed}")
        print(
            f"control-plane calls={control_calls} ({control_calls / args.tenants:.1f}/tenant) "
            f"other calls={other_calls} updates/tenant={updates_per_tenant:.1f} "
            f"chain_s={chain:.1f} "
            f"sequential sample: {args.sample} tenants in {seq_sample_s:.1f} s"
        )
        print(
            f"bench rollout: tenants={args.tenants} wall_s={wall:.1f} bound_s={bound:.1f} "
            f"ratio_to_bound={wall / bound:.2f} sequential_s={seq:.0f} "
            f"speedup_vs_sequential={seq / wall:.1f} throttled={throttled} "
            f"cpu_ms_per_tenant={cpu * 1000 / args.tenants:.1f} worker_rss_mb={rss_mb:.0f}"
        )
    finally:
        scheduler.stop = True
        cleanup()


if __name__ == "__main__":
    main()

"""Fault drills: tenants onboarded and a release rolled out to them on real Celery workers
(prefork, as deployed) and the local AWS while something breaks. Each prints its row in the
"fault drills" table at the end of the run (tests/faults/conftest.py) and fails when any
tenant is lost, any resource duplicated, any job stuck or any step ran on two workers at
once (tests/faults/drill.py says how each is judged).

`make test` runs each scenario once with two tenants; `make faults` (FAULTS_FULL=1) runs
the full counts. Leases are 4 s instead of 120 s and the sweep (what beat runs every 30 s)
runs every half second from the test, so a lost worker is noticed in seconds: the
mechanism is the product's, only its clock is faster.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from datetime import timedelta

import psutil
import pytest
from django.utils import timezone

from deployments.releases import ReleaseInput, release_register
from deployments.rollouts import rollouts_advance_all
from opsconsole.jobs.models import StepRun
from opsconsole.jobs.services import jobs_requeue_expired
from opsconsole.sandbox import demo_release, services
from opsconsole.sandbox.seed import sandbox_seed
from tests.faults import drill
from tests.faults.private_redis import reset_pools, start_redis
from tests.integration.demo_support import drop_databases, tenant_db_prefix

pytestmark = pytest.mark.integration

FULL = os.environ.get("FAULTS_FULL", "") not in ("", "0")
LEASE_S = 4
TENANTS = 3 if FULL else 2
# Each step starts a little later, so a fault lands inside the work, not after it.
SLOW = {"JOB_STEP_DELAY_SECONDS": "0.3"}


def runs(full: int) -> int:
    return full if FULL else 1


def time_limit(full_runs: int, *, per_run_s: int = 200) -> pytest.MarkDecorator:
    """pytest's 300 s guard against a hang, stretched to the drill's count of runs: each
    run is held to its own deadline (``Drill.wait``), and 20 SIGKILL runs of ~25 s each
    outgrew 300 s in `make faults`, which then reported a timeout, not a result."""
    return pytest.mark.timeout(120 + per_run_s * runs(full_runs))


@pytest.fixture
def drill_env(settings, worker_factory, admin_user, client):
    settings.ROLLOUT_ADVANCE_DEBOUNCE_S = 0
    settings.JOB_REDISPATCH_AFTER_SECONDS = 5
    budget = f"drill-budget-{uuid.uuid4().hex[:8]}"
    settings.RATE_BUDGET_PREFIX = budget
    sandbox_seed(releases=demo_release.DEMO_VERSIONS[:2])
    client.force_login(admin_user)
    env = {
        "RATE_BUDGET_PREFIX": budget,
        "ROLLOUT_ADVANCE_DEBOUNCE_S": "0",
        "JOB_LEASE_SECONDS": str(LEASE_S),
        "JOB_REDISPATCH_AFTER_SECONDS": "5",
    }

    def start_worker(**extra):
        return worker_factory(**{**env, **extra})

    drop_databases(tenant_db_prefix("fd"))
    yield client, start_worker
    drop_databases(tenant_db_prefix("fd"))


def sweep() -> None:
    """What beat runs: re-queue what dead workers left, re-send lost messages, advance."""
    jobs_requeue_expired()
    rollouts_advance_all()


def _run_all(
    d: drill.Drill, count: int, *, timeout: float = 180, before=None, tick=None, after=None
):
    for run in range(count):
        slugs = d.onboard(run, TENANTS)
        started = time.monotonic()
        if before:
            before()

        def step(started=started):
            sweep()
            if tick:
                tick(started)

        rollout = d.wait(slugs, timeout=timeout, tick=step)
        if after:
            after()  # the fault ends before the drill looks at AWS
        d.row.add(d.check(slugs, rollout, started))
    drill.ROWS.append(d.row)
    assert d.row.clean, "\n".join(d.row.problems)


@time_limit(3)
def test_aws_answers_throttles_and_5xx(drill_env, live_aws):
    browser, start_worker = drill_env
    workers = [start_worker(), start_worker()]
    d = drill.Drill(browser, scenario="30% throttles and 5xx", prefix="fd-t")
    seconds = 60 if FULL else 20
    reports = []
    try:
        _run_all(
            d,
            runs(3),
            before=lambda: drill.arm_faults(live_aws, error_rate=0.3, seconds=seconds),
            after=lambda: reports.append(drill.disarm_faults(live_aws)),
        )
    finally:
        drill.disarm_faults(live_aws)
    assert all(w.poll() is None for w in workers)
    # The console's calls really met the faults (a check that cannot fail is no check).
    assert all(sum(r["injected"].values()) > 0 for r in reports), reports


@pytest.mark.long  # a long scenario: `make faults` runs it, `make test` does not
@time_limit(3)
def test_aws_not_found_right_after_create(drill_env, live_aws):
    browser, start_worker = drill_env
    start_worker()
    start_worker()
    d = drill.Drill(browser, scenario="not found after create", prefix="fd-n")
    reports = []
    try:
        _run_all(
            d,
            runs(3),
            before=lambda: drill.arm_faults(
                live_aws, error_rate=0, not_found_after_create_s=3, seconds=120
            ),
            after=lambda: reports.append(drill.disarm_faults(live_aws)),
        )
    finally:
        drill.disarm_faults(live_aws)
    # The drill really hit the console with it (a check that cannot fail is no check).
    assert all(r["injected"].get("not-found-after-create", 0) for r in reports), reports


@pytest.mark.long  # a long scenario: `make faults` runs it, `make test` does not
@time_limit(20)
def test_worker_sigkilled_at_random_steps(drill_env):
    browser, start_worker = drill_env
    slow = SLOW
    workers = [start_worker(**slow), start_worker(**slow)]
    d = drill.Drill(browser, scenario="worker SIGKILL at random", prefix="fd-k")
    rng = random.Random(os.environ.get("FAULTS_SEED", "11"))
    plan = {"next": 0.0}

    def before():
        plan["next"] = time.monotonic() + rng.uniform(0.5, 3)

    def tick(started):
        if time.monotonic() < plan["next"] or time.monotonic() - started > 60:
            return
        victim = workers.pop(rng.randrange(len(workers)))
        main = psutil.Process(victim.pid)
        pids = [main.pid] + [c.pid for c in main.children(recursive=True)]
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        now = time.time()
        d.kills.update(dict.fromkeys(pids, now))
        workers.append(start_worker(**slow))
        plan["next"] = time.monotonic() + rng.uniform(2, 6)

    _run_all(d, runs(20), before=before, tick=tick)
    assert d.kills, "no worker was killed"


@time_limit(3)
def test_redis_restarted_mid_rollout(drill_env, settings, tmp_path):
    from opsconsole.celery import app

    browser, start_worker = drill_env
    port = services.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    box = {"redis": start_redis(port, tmp_path), "restarted": 0}
    old = app.conf.broker_url
    app.conf.broker_url = url
    settings.RATE_BUDGET_REDIS_URL = url
    reset_pools(app)
    try:
        on_it = {"REDIS_URL": url, "RATE_BUDGET_REDIS_URL": url, **SLOW}
        start_worker(**on_it)
        start_worker(**on_it)
        d = drill.Drill(browser, scenario="Redis restarted", prefix="fd-r")
        plan = {"at": 0.0}

        def before():
            plan["at"] = time.monotonic() + random.uniform(0.5, 2.5)

        def tick(_started):
            if plan["at"] and time.monotonic() > plan["at"]:
                plan["at"] = 0.0
                services.stop_process(box["redis"])
                time.sleep(2)  # down for a moment: sends fail, workers reconnect
                box["redis"] = start_redis(port, tmp_path)
                box["restarted"] += 1

        _run_all(d, runs(3), before=before, tick=tick)
        assert box["restarted"] == d.row.runs
    finally:
        app.conf.broker_url = old
        reset_pools(app)
        services.stop_process(box["redis"])


@pytest.mark.long  # a long scenario: `make faults` runs it, `make test` does not
@time_limit(3, per_run_s=260)
def test_a_migration_outlives_three_leases(drill_env):
    browser, start_worker = drill_env
    start_worker()
    start_worker()
    base = demo_release.build_demo_release(drill.TO_RELEASE)
    version = f"2026.12.5-drill-{uuid.uuid4().hex[:6]}"
    release_register(
        ReleaseInput(
            version=version,
            artifact="zip",
            zip_bytes=base.zip_bytes,
            runtime=base.runtime,
            handler=base.handler,
            migration_files=[*((m.name, m.sql) for m in base.migrations)]
            + [("0003_slow.sql", f"SELECT pg_sleep({3 * LEASE_S + 1});")],
        )
    )
    d = drill.Drill(browser, scenario="step outlives its lease", prefix="fd-l")
    d.to_release = version
    _run_all(d, runs(3), timeout=240)
    # The slow step ran once per deployment: its worker kept the lease the whole time.
    schema_runs = StepRun.objects.filter(
        step__job__kind="tenant_deploy",
        step__name="schema",
        step__job__subject_id__startswith=d.prefix,
    )
    assert schema_runs.count() == d.row.tenants, list(schema_runs.values_list("owner", "outcome"))
    assert all(r.ended_at - r.started_at > timedelta(seconds=3 * LEASE_S) for r in schema_runs)


@time_limit(3)
def test_console_database_cut_mid_rollout(drill_env, settings):
    """The console's PostgreSQL goes away for 3 s and comes back: the workers reach it
    through a proxy the drill cuts, so every open connection is reset and new ones are
    refused, as a server restart does to its clients.

    (The run of a step that once stayed open in 1 drill of 3 was the proxy's: its cut
    closed sockets a pipe thread was blocked on, which ends nothing on Linux, so a worker
    waiting for an answer waited forever. tests/test_tcp_proxy.py holds it.)"""
    import dj_database_url

    from tests.tcp_proxy import TcpProxy

    browser, start_worker = drill_env
    url = dj_database_url.parse(os.environ["DATABASE_URL"])
    proxy = TcpProxy(url.get("HOST") or "127.0.0.1", int(url.get("PORT") or 5432)).start()
    through_proxy = (
        f"postgres://{url.get('USER') or 'postgres'}@127.0.0.1:{proxy.port}/"
        f"{settings.DATABASES['default']['NAME']}"
    )
    try:
        start_worker(DATABASE_URL=through_proxy, **SLOW)
        start_worker(DATABASE_URL=through_proxy, **SLOW)
        d = drill.Drill(browser, scenario="console PostgreSQL cut 3 s", prefix="fd-p")
        plan = {"at": 0.0, "cuts": 0}

        def before():
            plan["at"] = time.monotonic() + random.uniform(0.5, 2.5)

        def tick(_started):
            if plan["at"] and time.monotonic() > plan["at"]:
                plan["at"] = 0.0
                proxy.cut()
                time.sleep(3)
                proxy.start()
                plan["cuts"] += 1

        _run_all(d, runs(3), before=before, tick=tick)
        assert plan["cuts"] == d.row.runs
    finally:
        proxy.cut()


@pytest.mark.long  # a long scenario: `make faults` runs it, `make test` does not
@time_limit(3, per_run_s=320)
def test_sandbox_aws_restarted_empty_mid_rollout(drill_env, settings, tmp_path):
    """The local AWS process is stopped mid-rollout and a fresh, empty one starts on its
    port, as a `make run` restart does (which seeds the account's baseline again). What the
    console's records say exists is then gone: the drift check must see it and Repair (the
    reconcile job) must bring every tenant back, while the rollout ends, each deployment
    succeeded or failed cleanly (its tenant serving the release its record says).

    The drill has a local AWS of its own: the session's one serves the other tests."""
    from django.urls import reverse

    from opsconsole.aws.clients import reset_clients
    from opsconsole.jobs.models import FINISHED, Job, JobStatus

    browser, start_worker = drill_env
    port = services.free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path / "localaws.log"
    box = {"aws": services.start_local_aws(port=port, log_path=log), "restarts": 0}
    settings.AWS_ENDPOINT_URL = endpoint
    reset_clients()
    releases = demo_release.DEMO_VERSIONS[:2]

    def jobs(kind: str, since) -> list[Job]:
        return list(Job.objects.filter(kind=kind, subject_id__in=d.slugs, created_at__gte=since))

    def restart() -> None:
        services.stop_process(box["aws"])
        box["aws"] = services.start_local_aws(port=port, log_path=log)
        reset_clients()
        sandbox_seed(releases=releases)  # what the run command does at every start
        box["restarts"] += 1

    try:
        sandbox_seed(releases=releases)
        on_it = {"AWS_ENDPOINT_URL": endpoint, **SLOW}
        start_worker(**on_it)
        start_worker(**on_it)
        d = drill.Drill(browser, scenario="sandbox AWS restarted empty", prefix="fd-a")
        plan: dict = {}

        def before():
            plan.clear()
            plan.update(phase="armed", delay=random.uniform(0.5, 2.5), since=None)

        def tick(_started):
            """armed -> (a deployment runs) restarted -> checked -> repaired -> done."""
            phase = plan["phase"]
            if phase == "armed":
                deploying = Job.objects.filter(
                    kind="tenant_deploy", subject_id__in=d.slugs, status=JobStatus.RUNNING
                ).first()
                if deploying is None:
                    return
                plan.setdefault("at", time.monotonic() + plan["delay"])
                if time.monotonic() < plan["at"]:
                    return
                restart()
                plan.update(phase="restarted", since=timezone.now())
                # The operator's drift check, as the daily beat or the tenant page runs it.
                for slug in d.slugs:
                    browser.post(reverse("tenants:drift", args=[slug]))
            elif phase in ("restarted", "verifying"):
                checks = jobs("tenant_drift_check", plan["since"])
                if len(checks) < len(d.slugs) or any(j.status not in FINISHED for j in checks):
                    return
                outputs = {j.subject_id: j.steps.get().output for j in checks}
                drifted = {
                    slug: out["drift"] for slug, out in outputs.items() if not out["in_sync"]
                }
                if phase == "verifying":
                    plan.update(phase="done", drifted=drifted)
                    return
                plan.update(phase="repairing", since=timezone.now(), missing=drifted)
                for slug in drifted:
                    browser.post(reverse("tenants:repair", args=[slug]), {"confirmed": "yes"})
            elif phase == "repairing":
                repairs = jobs("tenant_reconcile", plan["since"])
                if len(repairs) < len(plan["missing"]) or any(
                    j.status not in FINISHED for j in repairs
                ):
                    return
                plan.update(phase="verifying", since=timezone.now())
                for slug in d.slugs:
                    browser.post(reverse("tenants:drift", args=[slug]))

        for run in range(runs(3)):
            slugs = d.onboard(run, TENANTS)
            started = time.monotonic()
            before()

            def step(started=started):
                sweep()
                tick(started)

            rollout = d.wait(slugs, timeout=180, tick=step)
            # The rollout may end before the repair does: the drill waits for both.
            deadline = time.monotonic() + 120
            while plan["phase"] != "done" and time.monotonic() < deadline:
                step()
                time.sleep(0.5)
            result = d.check(slugs, rollout, started, failed_ok=True)
            if plan["phase"] != "done":
                result.lost.append(f"the repair did not end: {plan['phase']}")
            else:
                # The drift check saw what was gone, and finds nothing after the repair.
                assert plan["missing"], "the drift check saw nothing missing after the restart"
                result.lost += [
                    f"{slug} still drifts after Repair: {drift}"
                    for slug, drift in plan["drifted"].items()
                ]
            d.row.add(result)
        drill.ROWS.append(d.row)
        assert d.row.clean, "\n".join(d.row.problems)
        assert box["restarts"] == d.row.runs
    finally:
        services.stop_process(box["aws"])
        reset_clients()

"""End to end on the sandbox: tenants onboarded through the console with real workers on
the local AWS, real demo apps behind real HTTP APIs, and rollouts that meet them.

- The broken demo release stops at its canary: its own health route refuses, every tenant
  keeps answering with the release it had, and the deployment says why in the app's words.
- A release that is healthy on its health route but fails under traffic trips the
  tenant's real CloudWatch alarm (evaluated by the local AWS every second here) during the
  alias canary, and the alias is reverted.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from deployments.models import DeploymentStatus, Release, Rollout, RolloutStatus, Traffic
from deployments.releases import ReleaseInput, release_register
from deployments.rollouts import Strategy, Target, rollout_start
from opsconsole.aws.clients import client as aws_client
from opsconsole.jobs.models import JobStatus
from opsconsole.sandbox import demo_release, services
from opsconsole.sandbox.seed import sandbox_seed
from tenants import naming
from tests.integration.demo_support import (
    api_url,
    call,
    drop_databases,
    onboard,
    tagged,
    tenant_db_prefix,
    wait_active,
)

pytestmark = pytest.mark.integration

FIRST = demo_release.DEMO_VERSION
BROKEN = "2026.12.1-demo-broken"


@pytest.fixture(scope="module")
def local_aws_server(tmp_path_factory):
    """This module's own local AWS: alarms evaluated every second instead of every minute,
    so an alarm can fire within a short canary."""
    port = services.free_port()
    log = tmp_path_factory.mktemp("localaws-demo") / "localaws.log"
    previous = os.environ.get("LOCALAWS_ALARM_INTERVAL_S")
    os.environ["LOCALAWS_ALARM_INTERVAL_S"] = "1"
    try:
        proc = services.start_local_aws(port=port, log_path=log)
    finally:
        if previous is None:
            os.environ.pop("LOCALAWS_ALARM_INTERVAL_S")
        else:
            os.environ["LOCALAWS_ALARM_INTERVAL_S"] = previous
    yield f"http://127.0.0.1:{port}"
    services.stop_process(proc)


@pytest.fixture
def demo_dbs():
    drop_databases(tenant_db_prefix("dr"))
    yield
    drop_databases(tenant_db_prefix("dr"))


@pytest.fixture
def sandbox(demo_dbs, settings, worker_factory, admin_user, client):
    """A seeded sandbox with the three demo releases and workers that take the jobs (the
    databases are dropped once the workers are gone)."""
    settings.ROLLOUT_ADVANCE_DEBOUNCE_S = 0
    budget = f"test-budget-{uuid.uuid4().hex[:8]}"
    settings.RATE_BUDGET_PREFIX = budget
    sandbox_seed(releases=demo_release.DEMO_VERSIONS)
    workers = [
        worker_factory(RATE_BUDGET_PREFIX=budget, ROLLOUT_ADVANCE_DEBOUNCE_S="0") for _ in range(3)
    ]
    client.force_login(admin_user)
    return client, workers


def release_row(version: str):
    return Release.objects.get(version=version)


def _wait_rollout(rollout: Rollout, workers, *, until, timeout: float = 90) -> Rollout:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rollout.refresh_from_db()
        if until(rollout):
            return rollout
        for worker in workers:
            assert worker.poll() is None, worker.log_path.read_text()[-3000:]
        time.sleep(0.5)
    rows = list(rollout.deployments.values_list("tenant__slug", "status", "step", "reason"))
    raise AssertionError(f"rollout {rollout.status}: {rollout.status_reason}; {rows}")


def test_the_broken_demo_release_halts_at_the_canary_in_the_apps_own_words(sandbox):
    browser, workers = sandbox
    slugs = [tagged(f"dr-{n}") for n in range(5)]
    for n, slug in enumerate(slugs):
        onboard(browser, slug, release=FIRST, ring=0 if n == 0 else 1)
    tenants = wait_active(slugs, workers)
    for tenant in tenants:
        health = call(tenant, "GET", "/healthz")
        assert (health.status, health.body.get("release")) == (200, FIRST), health

    release = release_row(BROKEN)
    rollout = rollout_start(
        release=release,
        target=Target(kind="tenants", values=slugs),
        strategy=Strategy(max_parallel=5, bake_s=0),
    )
    rollout = _wait_rollout(rollout, workers, until=lambda r: r.status == RolloutStatus.HALTED)

    assert "canary" in rollout.status_reason
    deployments = {d.tenant.slug: d for d in rollout.deployments.select_related("tenant")}
    canary = deployments[slugs[0]]
    assert canary.status == DeploymentStatus.FAILED
    # The app's own words, from its /healthz answer.
    assert "refusing traffic" in canary.reason, canary.reason
    assert "500" in canary.reason
    assert all(
        d.status == DeploymentStatus.PENDING for slug, d in deployments.items() if slug != slugs[0]
    )
    # Every tenant still serves the release it had, through its API.
    for tenant in tenants:
        tenant.refresh_from_db()
        assert tenant.current_release == FIRST
        health = call(tenant, "GET", "/healthz")
        assert (health.status, health.body.get("release")) == (200, FIRST), (tenant, health)
        notes = call(tenant, "GET", "/notes")
        assert notes.status == 200, notes


# A release that passes its health route and breaks under real traffic.
_FAILS_UNDER_TRAFFIC = '''\
"""2026.12.0-demo with a /notes that fails on every request: healthy on /healthz."""

import app_notes_author
import web


def broken_notes(request):
    raise RuntimeError("notes cache poisoned: cannot list notes")


ROUTES = {**app_notes_author.ROUTES, ("GET", "/notes"): broken_notes}


def handler(event, context):
    return web.serve(ROUTES, event)
'''


def _register_fails_under_traffic(version: str):
    files = demo_release.app_files(
        version, source=_FAILS_UNDER_TRAFFIC, modules=("app_notes_author.py",)
    )
    built = demo_release.build_release(
        version, files, demo_release.build_demo_release("2026.12.0-demo").migrations
    )
    return release_register(
        ReleaseInput(
            version=version,
            artifact="zip",
            zip_bytes=built.zip_bytes,
            runtime=built.runtime,
            handler=built.handler,
            migration_files=[(m.name, m.sql) for m in built.migrations],
        )
    )


def _sensitive_errors_alarm(tenant) -> str:
    """The tenant's Errors alarm, tuned for a test: 10-second periods, one breaching
    period (more than 2 errors) is enough. The local AWS evaluates it like any other."""
    name = naming.alarm_name(tenant.slug, "errors")
    cw = aws_client("cloudwatch", tenant.region)
    [alarm] = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    cw.put_metric_alarm(
        AlarmName=name,
        Namespace=alarm["Namespace"],
        MetricName=alarm["MetricName"],
        Statistic=alarm["Statistic"],
        Dimensions=alarm["Dimensions"],
        Period=10,
        EvaluationPeriods=1,
        DatapointsToAlarm=1,
        Threshold=2.0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
        ActionsEnabled=False,
    )
    return name


def _errors_counted(tenant) -> float:
    """AWS/Lambda Errors of the tenant's alias over the last quarter hour, as the local
    AWS recorded them."""
    function = naming.function_name(tenant.slug)
    now = time.time()
    answer = aws_client("cloudwatch", tenant.region).get_metric_data(
        MetricDataQueries=[
            {
                "Id": "errors",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Lambda",
                        "MetricName": "Errors",
                        "Dimensions": [
                            {"Name": "FunctionName", "Value": function},
                            {"Name": "Resource", "Value": f"{function}:{naming.ALIAS}"},
                        ],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=datetime.fromtimestamp(now - 900, UTC),
        EndTime=datetime.fromtimestamp(now + 60, UTC),
    )
    return sum(answer["MetricDataResults"][0]["Values"])


@pytest.mark.long  # a long scenario: `make faults` runs it, `make test` does not
def test_errors_under_traffic_trip_the_real_alarm_during_the_canary_and_revert(sandbox):
    browser, workers = sandbox
    onboard(browser, tagged("dr-traffic"), release=FIRST, ring=0)
    [tenant] = wait_active([tagged("dr-traffic")], workers)
    alarm = _sensitive_errors_alarm(tenant)
    release = _register_fails_under_traffic(f"2026.12.9-fails-{uuid.uuid4().hex[:4]}")

    rollout = rollout_start(
        release=release,
        target=Target(kind="tenants", values=[tenant.slug]),
        strategy=Strategy(
            max_parallel=1, bake_s=0, traffic=Traffic.CANARY, canary_percent=50, canary_minutes=1
        ),
    )
    rollout = _wait_rollout(
        rollout,
        workers,
        until=lambda r: r.deployments.filter(canary_started_at__isnull=False).exists(),
    )

    # Users of the tenant during the canary: half of them reach the new version.
    answers: list[int] = []
    stop = threading.Event()
    url = api_url(tenant)

    def users() -> None:
        while not stop.is_set():
            answers.append(call(url, "GET", "/notes").status)
            time.sleep(0.05)

    thread = threading.Thread(target=users, daemon=True)
    thread.start()
    try:
        rollout = _wait_rollout(
            rollout, workers, until=lambda r: r.status == RolloutStatus.HALTED, timeout=120
        )
    finally:
        stop.set()
        thread.join(timeout=30)

    [deployment] = rollout.deployments.all()
    assert deployment.status == DeploymentStatus.FAILED
    assert alarm in deployment.reason and "ALARM" in deployment.reason, deployment.reason
    assert "reverted" in deployment.reason
    assert 500 in answers and 200 in answers
    # The errors the alarm counted are the 500s the users got: each an unhandled error.
    assert _errors_counted(tenant) == answers.count(500)
    assert deployment.job.status == JobStatus.FAILED
    # Everything is on the old version again: /notes answers every time.
    assert all(call(tenant, "GET", "/notes").status == 200 for _ in range(20))
    health = call(tenant, "GET", "/healthz")
    assert health.body.get("release") == FIRST
    tenant.refresh_from_db()
    assert tenant.current_release == FIRST


def test_roll_back_moves_the_aliases_back_and_the_old_code_answers(sandbox):
    """The author release goes out (migration 0002 adds a column), then Roll back as an
    operator clicks it: each tenant's alias returns to its old version, the demo app
    answers with the first release through its real API, on the migrated schema."""
    browser, workers = sandbox
    slugs = [f"dr-b{n}" for n in range(3)]
    for n, slug in enumerate(slugs):
        onboard(browser, slug, release=FIRST, ring=0 if n == 0 else 1)
    tenants = wait_active(slugs, workers)
    lam = aws_client("lambda")

    def serving(tenant) -> str:
        alias = lam.get_alias(FunctionName=naming.function_name(tenant.slug), Name=naming.ALIAS)
        return alias["FunctionVersion"]

    before = {t.slug: serving(t) for t in tenants}
    rollout = rollout_start(
        release=release_row("2026.12.0-demo"),
        target=Target(kind="tenants", values=slugs),
        strategy=Strategy(max_parallel=5, bake_s=0),
    )
    rollout = _wait_rollout(rollout, workers, until=lambda r: r.status == RolloutStatus.SUCCEEDED)
    for tenant in tenants:
        health = call(tenant, "GET", "/healthz")
        assert health.body.get("release") == "2026.12.0-demo", health
        assert serving(tenant) != before[tenant.slug]

    asked = browser.post(f"/rollouts/{rollout.pk}/rollback/")
    assert 'value="alias" checked' in asked.content.decode()
    done = browser.post(
        f"/rollouts/{rollout.pk}/rollback/", {"confirmed": "yes", "method": "alias"}
    )
    assert done.status_code == 302, done.content[:500]
    back = Rollout.objects.get(rollback_of=rollout)
    back = _wait_rollout(back, workers, until=lambda r: r.status == RolloutStatus.SUCCEEDED)
    assert back.method == "alias"
    for tenant in tenants:
        tenant.refresh_from_db()
        assert tenant.current_release == FIRST
        assert serving(tenant) == before[tenant.slug]  # the very version, not a new one
        health = call(tenant, "GET", "/healthz")
        assert (health.status, health.body.get("release")) == (200, FIRST), health
        # The first release's code on the schema 0002 left (a nullable column it ignores).
        assert call(tenant, "GET", "/notes").status == 200
    steps = {
        d.tenant.slug: dict(d.job.steps.values_list("name", "output"))
        for d in back.deployments.select_related("tenant", "job")
    }
    for slug, outputs in steps.items():
        assert outputs["back_check"]["fallback"] == "", (slug, outputs["back_check"])
        assert outputs["back_alias"]["version"] == before[slug]

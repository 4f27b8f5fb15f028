"""bench pages: the fleet page, a health page and a rollout page at 20,000 tenants, through
gunicorn with concurrent clients, and the AWS cost of watching the fleet.

Rows are realistic: every ``bpg*`` tenant has its resource records (function, alias, API,
log group, alarms; a database instance for the dedicated ones) and a job history, and a
rollout puts a release on all of them. The console is served by gunicorn as deployed
(``--workers 2 --threads 4``) and ``--clients`` threads ask it at once.

AWS is answered in each process by a fake at botocore's ``before-call`` hook (synthetic
CloudWatch numbers, alarms and log lines), so calls are counted at the client layer as
they would be made to AWS, and page times are the console's own (SQL, cache, templates).

- fleet page (sorted by error rate, page 2), health page of one dedicated tenant, rollout
  page of the 20,000-tenant rollout: p50/p95 over ``--requests`` views each;
- the fleet refresh (tenants.health.fleet_refresh, what beat runs every
  HEALTH_FLEET_REFRESH_SECONDS) run for real after the page was looked at, at 1,000 and
  at 20,000 tenants: CloudWatch metrics it requested, per hour with the page open, and
  their price ($0.01 per 1,000 metrics; DescribeAlarms counted as API requests at $0.01
  per 1,000).

Goals (issue 14): fleet page p95 under 100 ms at 20,000 tenants; watching 20,000 tenants
under $5 a day. Each figure with a goal prints its ratio to it (below 1: met).

    python bench/pages.py [--tenants 20000] [--requests 200] [--clients 8]

The last line is the summary:
``bench pages: tenants=N fleet_p50_ms=N fleet_p95_ms=N fleet_p95_ratio=R ... usd_day_N=N
usd_day_ratio=R``.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")
# One cache prefix for this process and the gunicorn workers (they share the marks and
# the refreshed numbers through Redis), never the console's own.
os.environ.setdefault("OPSCONSOLE_CACHE_PREFIX", f"bench-pages-{uuid.uuid4().hex[:8]}")

import django  # noqa: E402

django.setup()

from botocore.awsrequest import AWSResponse  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402

from deployments.models import Deployment, DeploymentStatus, Release, Rollout  # noqa: E402
from opsconsole.accounts.models import Role, User  # noqa: E402
from opsconsole.aws.clients import _session, reset_clients  # noqa: E402
from opsconsole.jobs.models import Job, JobStatus  # noqa: E402
from tenants import naming  # noqa: E402
from tenants.health.fleet_refresh import fleet_refresh  # noqa: E402
from tenants.models import Isolation, Tenant, TenantResource, TenantStatus  # noqa: E402

PREFIX = "bpg"
USERNAME = "bench-pages"
VERSION = "bench-pages-9.9.9"
REGION = settings.AWS_REGION
# One tenant in this many has an alarm firing.
ALARM_EVERY = 250
PRICE_PER_METRIC = 0.01 / 1000
PRICE_PER_REQUEST = 0.01 / 1000
GOAL_FLEET_P95_MS = 100.0
GOAL_USD_DAY = 5.0
GUNICORN = ["--workers", "2", "--threads", "4"]  # as the Dockerfile runs it


class FakeAws:
    """Answers every AWS call in process and counts them by operation, and the metrics
    GetMetricData was asked for."""

    tenants = 0  # how many bpg tenants the alarm scan covers

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.metrics = 0
        self._params = threading.local()
        self._lock = threading.Lock()

    def install(self) -> None:
        reset_clients()
        events = _session().events
        events.register("before-parameter-build", self._keep_params)
        events.register("before-call", self._answer)

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
            self.metrics = 0

    def _keep_params(self, params, **kwargs) -> None:
        self._params.value = params

    def _answer(self, model, **kwargs):
        params = getattr(self._params, "value", {}) or {}
        with self._lock:
            self.calls[model.name] = self.calls.get(model.name, 0) + 1
            if model.name == "GetMetricData":
                self.metrics += len(params.get("MetricDataQueries", []))
        parsed = getattr(self, f"_{model.name}", lambda p: {})(params)
        parsed.setdefault("ResponseMetadata", {"HTTPStatusCode": 200, "RetryAttempts": 0})
        return AWSResponse(None, 200, {}, None), parsed

    @staticmethod
    def _GetMetricData(params) -> dict:  # noqa: N802 - the operation's name
        start = params["StartTime"]
        end = params["EndTime"]
        results = []
        for q in params["MetricDataQueries"]:
            period = q["MetricStat"]["Period"]
            n = max(1, int((end - start).total_seconds() // period))
            seed = sum(map(ord, q["Id"]))
            stamps = [start + timedelta(seconds=period * i) for i in range(n)]
            values = [float((seed * 7 + i * 13) % 97 + 1) for i in range(n)]
            results.append(
                {
                    "Id": q["Id"],
                    "Label": q["Id"],
                    "Timestamps": stamps,
                    "Values": values,
                    "StatusCode": "Complete",
                }
            )
        return {"MetricDataResults": results}

    @classmethod
    def _DescribeAlarms(cls, params) -> dict:  # noqa: N802
        if "AlarmNames" in params:
            return {
                "MetricAlarms": [
                    {
                        "AlarmName": name,
                        "StateValue": "OK",
                        "StateReason": "fine",
                        "StateUpdatedTimestamp": datetime.now(UTC),
                        "Namespace": "AWS/Lambda",
                        "MetricName": "Errors",
                    }
                    for name in params["AlarmNames"]
                ]
            }
        # The fleet's "in ALARM" scan: one tenant in ALARM_EVERY, 100 alarms a page.
        firing = [
            {
                "AlarmName": naming.alarm_name(f"{PREFIX}{i:05d}", "errors"),
                "StateValue": "ALARM",
                "AlarmDescription": f"opsconsole tenant {PREFIX}{i:05d}",
            }
            for i in range(0, cls.tenants, ALARM_EVERY)
        ]
        page = int(params.get("NextToken") or 0)
        size = params.get("MaxRecords", 100)
        answer: dict = {"MetricAlarms": firing[page * size : (page + 1) * size]}
        if (page + 1) * size < len(firing):
            answer["NextToken"] = str(page + 1)
        return answer

    @staticmethod
    def _FilterLogEvents(params) -> dict:  # noqa: N802
        now_ms = int(time.time() * 1000)
        return {
            "events": [
                {
                    "timestamp": now_ms - i * 1000,
                    "logStreamName": "s",
                    "message": f"[ERROR] KeyError: 'customer_id' request_id={i:016x}",
                }
                for i in range(20, 0, -1)
            ]
        }


# --- rows ----------------------------------------------------------------------------


def cleanup() -> None:
    Deployment.objects.filter(rollout__release__version=VERSION).delete()
    Rollout.objects.filter(release__version=VERSION).delete()
    Release.objects.filter(version=VERSION).delete()
    Job.objects.filter(subject_type="tenant", subject_id__startswith=PREFIX).delete()
    TenantResource.objects.filter(tenant__slug__startswith=PREFIX).delete()
    Tenant.objects.filter(slug__startswith=PREFIX).delete()
    User.objects.filter(username=USERNAME).delete()


def _resources(tenant: Tenant, i: int) -> list[TenantResource]:
    slug = tenant.slug
    function = naming.function_name(slug)
    rows = [
        ("function", function, ""),
        ("alias", f"{function}:{naming.ALIAS}", function),
        ("api", naming.api_name(slug), f"api{i:05d}"),
        ("log_group", naming.log_group_name(slug), ""),
        *[("alarm", naming.alarm_name(slug, w), "") for w in ("errors", "throttles", "api-5xx")],
    ]
    if tenant.isolation == Isolation.DEDICATED:
        rows.append(("db_instance", naming.db_instance_id(slug), naming.db_instance_id(slug)))
    # A missing resource now and then: the fleet's query for them has rows.
    status = "missing" if i % 1000 == 3 else "present"
    return [
        TenantResource(
            tenant=tenant,
            kind=kind,
            name=name,
            identifier=identifier,
            region=REGION,
            status=status if kind == "function" else "present",
        )
        for kind, name, identifier in rows
    ]


def create_tenants(start: int, stop: int) -> None:
    """Tenants ``start``..``stop`` with their resource records and three jobs each."""
    now = datetime.now(UTC)
    tenants = Tenant.objects.bulk_create(
        [
            Tenant(
                name=f"Bench customer {i}",
                slug=f"{PREFIX}{i:05d}",
                region=REGION,
                status=TenantStatus.SUSPENDED if i % 100 == 7 else TenantStatus.ACTIVE,
                isolation=Isolation.DEDICATED if i % 10 == 0 else Isolation.SHARED,
                current_release="2.3.0",
                desired_release="2.4.0" if i % 50 == 0 else "2.3.0",
                ring=i % 3,
            )
            for i in range(start, stop)
        ],
        batch_size=2000,
    )
    TenantResource.objects.bulk_create(
        [r for i, t in zip(range(start, stop), tenants, strict=True) for r in _resources(t, i)],
        batch_size=5000,
    )
    Job.objects.bulk_create(
        [
            Job(
                kind=kind,
                subject_type="tenant",
                subject_id=t.slug,
                status=JobStatus.SUCCEEDED,
                finished_at=now - timedelta(days=n, minutes=i % 60),
            )
            for i, t in zip(range(start, stop), tenants, strict=True)
            for n, kind in enumerate(("tenant_provision", "tenant_reconcile", "tenant_drift_check"))
        ],
        batch_size=5000,
    )


def create_rollout() -> Rollout:
    """A rollout of every bpg tenant, in its second wave: the canary done, some running,
    most pending."""
    release = Release.objects.create(version=VERSION, artifact_type="zip")
    ids = list(
        Tenant.objects.filter(slug__startswith=PREFIX).order_by("slug").values_list("id", flat=True)
    )
    waves = [min(10, len(ids))]
    while sum(waves) < len(ids):
        waves.append(min(len(ids) - sum(waves), waves[-1] * 10))
    rollout = Rollout.objects.create(release=release, wave_sizes=waves, current_wave=1)
    rows, position = [], 0
    for wave, size in enumerate(waves):
        for _ in range(size):
            if wave == 0:
                status = DeploymentStatus.SUCCEEDED
            elif wave == 1 and position % 7 == 0:
                status = DeploymentStatus.RUNNING
            else:
                status = DeploymentStatus.PENDING
            rows.append(
                Deployment(
                    rollout=rollout,
                    tenant_id=ids[position],
                    wave=wave,
                    position=position,
                    status=status,
                    from_release="2.3.0",
                )
            )
            position += 1
    Deployment.objects.bulk_create(rows, batch_size=5000)
    return rollout


# --- gunicorn and its clients -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int) -> subprocess.Popen:
    config = Path(__file__).resolve().parent / "_pages_gunicorn.py"
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "opsconsole.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            *GUNICORN,
            "--config",
            str(config),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("bench pages: gunicorn did not start") from None
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("bench pages: gunicorn did not listen within 60 s")


def get(port: int, path: str, cookie: str) -> float:
    """One request on a fresh connection (as a browser's new page view); its time in ms."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise SystemExit(f"bench pages: {path} answered {response.status}")
    return (time.perf_counter() - started) * 1000


def load(port: int, path: str, cookie: str, *, requests: int, clients: int) -> list[float]:
    for _ in range(2 * clients):  # every worker thread warmed (templates, connections)
        get(port, path, cookie)
    with ThreadPoolExecutor(max_workers=clients) as pool:
        return list(pool.map(lambda _: get(port, path, cookie), range(requests)))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


# --- the cost of watching ---------------------------------------------------------------


def watching_cost(fake: FakeAws, port: int, fleet_url: str, cookie: str, tenants: int) -> dict:
    """One page view marks its rows; the refresh beat runs then asks AWS. Counted at
    the client layer, then scaled to an hour of the page open (it polls, so its rows stay
    watched) at one refresh per HEALTH_FLEET_REFRESH_SECONDS."""
    FakeAws.tenants = tenants
    get(port, fleet_url, cookie)
    fake.clear()
    report = fleet_refresh()
    rounds_per_hour = 3600 / settings.HEALTH_FLEET_REFRESH_SECONDS
    metrics_hour = fake.metrics * rounds_per_hour
    requests_hour = sum(fake.calls.values()) * rounds_per_hour
    usd_day = 24 * (metrics_hour * PRICE_PER_METRIC + requests_hour * PRICE_PER_REQUEST)
    return {
        "tenants": tenants,
        "watched": report.tenants_watched,
        "calls": dict(fake.calls),
        "metrics": fake.metrics,
        "metrics_hour": metrics_hour,
        "requests_hour": requests_hour,
        "usd_day": usd_day,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    # The rollout page of 20,000 deployments takes seconds a view: fewer views of it.
    parser.add_argument("--rollout-requests", type=int, default=24)
    args = parser.parse_args()
    small = min(1000, args.tenants)

    fake = FakeAws()
    fake.install()
    cleanup()
    proc = None
    try:
        started = time.perf_counter()
        create_tenants(0, small)
        user = User.objects.create_user(username=USERNAME, password=None, role=Role.VIEWER)
        client = Client()
        client.force_login(user)
        cookie = (
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
        fleet_url = reverse("tenants:list") + "?sort=errors&page=2"
        port = free_port()
        proc = start_gunicorn(port)

        # The page as it opens (page 1 by slug), left open: it polls, the same rows.
        watch_url = reverse("tenants:list")
        cost_small = watching_cost(fake, port, watch_url, cookie, small)
        create_tenants(small, args.tenants)
        rollout = create_rollout()
        setup_s = time.perf_counter() - started
        cost_big = watching_cost(fake, port, watch_url, cookie, args.tenants)

        # SQL of one fleet view, counted in this process (the same code gunicorn runs).
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(fleet_url).status_code == 200
        queries = len(ctx.captured_queries)

        health_url = reverse("tenants:health", args=[f"{PREFIX}00000"])
        rollout_url = reverse("deployments:rollout_detail", args=[rollout.pk])
        times = {
            name: load(port, url, cookie, requests=n, clients=args.clients)
            for name, url, n in (
                ("fleet", fleet_url, args.requests),
                ("health", health_url, args.requests),
                ("rollout", rollout_url, args.rollout_requests),
            )
        }
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        cleanup()

    print(
        f"setup: {args.tenants} tenants with resource records and 3 jobs each, a rollout "
        f"of all of them: {setup_s:.0f} s; gunicorn {' '.join(GUNICORN)}, "
        f"{args.clients} concurrent clients, {args.requests} requests per page"
    )
    figures = {}
    for name, values in times.items():
        p50, p95 = statistics.median(values), percentile(values, 95)
        figures[name] = (p50, p95)
        goal = (
            f", ratio to the {GOAL_FLEET_P95_MS:.0f} ms goal {p95 / GOAL_FLEET_P95_MS:.2f}"
            if name == "fleet"
            else " (no goal)"
        )
        print(f"{name} page: p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(values)} views{goal}")
    print(f"fleet page SQL: {queries} queries")
    interval = settings.HEALTH_FLEET_REFRESH_SECONDS
    for cost in (cost_small, cost_big):
        calls = ", ".join(f"{n} {op}" for op, n in sorted(cost["calls"].items()))
        print(
            f"watching {cost['tenants']} tenants (one page of {cost['watched']} rows open, "
            f"refresh every {interval} s): one refresh made {calls}, {cost['metrics']} "
            f"metrics; {cost['metrics_hour']:,.0f} metrics/h + {cost['requests_hour']:,.0f} "
            f"requests/h = ${cost['usd_day']:.2f}/day, ratio to the ${GOAL_USD_DAY:.0f} "
            f"goal {cost['usd_day'] / GOAL_USD_DAY:.3f}"
        )
    fleet, health, roll = figures["fleet"], figures["health"], figures["rollout"]
    print(
        f"bench pages: tenants={args.tenants} fleet_p50_ms={fleet[0]:.0f} "
        f"fleet_p95_ms={fleet[1]:.0f} fleet_p95_ratio={fleet[1] / GOAL_FLEET_P95_MS:.2f} "
        f"health_p50_ms={health[0]:.0f} health_p95_ms={health[1]:.0f} "
        f"rollout_p50_ms={roll[0]:.0f} rollout_p95_ms={roll[1]:.0f} queries={queries} "
        f"metrics_per_hour_{cost_small['tenants']}={cost_small['metrics_hour']:.0f} "
        f"usd_day_{cost_small['tenants']}={cost_small['usd_day']:.2f} "
        f"metrics_per_hour_{cost_big['tenants']}={cost_big['metrics_hour']:.0f} "
        f"usd_day_{cost_big['tenants']}={cost_big['usd_day']:.2f} "
        f"usd_day_ratio={cost_big['usd_day'] / GOAL_USD_DAY:.3f}"
    )


if __name__ == "__main__":
    main()

"""bench pages: the fleet page with 5,000 tenants and a tenant's health page.

AWS is answered in process by a fake at botocore's ``before-call`` hook (synthetic
CloudWatch numbers, alarms and log lines), so the figures are the console's own server
time: SQL, cache, building queries, parsing answers, charts, templates. Calls are counted
as they would be made to AWS.

- fleet page, warm cache: p50 and p95 over ``--requests`` views (sorted by error rate,
  page 2, to include the sort over every tenant), and its SQL query count;
- GetMetricData calls one cold fleet view makes (the bound is ceil(tenants x 3 / 500));
- health page of one dedicated tenant with every read refreshed (no cache), median.

Rows are ``bpg*`` tenants and a ``bench-pages`` viewer in the console's database; they are
deleted at the end (and at the start, after an interrupted run).

    python bench/pages.py [--tenants 5000] [--requests 40]

The last line is the summary:
``bench pages: tenants=5000 p50_ms=N p95_ms=N queries=N health_ms=N metric_calls_per_page=N``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")

import django  # noqa: E402

django.setup()

from botocore.awsrequest import AWSResponse  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402

from opsconsole.accounts.models import Role, User  # noqa: E402
from opsconsole.aws.clients import _session, reset_clients  # noqa: E402
from opsconsole.jobs.models import Job, JobStatus  # noqa: E402
from tenants import naming  # noqa: E402
from tenants.models import Isolation, Tenant, TenantResource, TenantStatus  # noqa: E402

PREFIX = "bpg"
USERNAME = "bench-pages"
REGION = settings.AWS_REGION


class FakeAws:
    """Answers every AWS call in process and counts them by operation."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self._params = threading.local()
        self._lock = threading.Lock()

    def install(self) -> None:
        reset_clients()
        events = _session().events
        events.register("before-parameter-build", self._keep_params)
        events.register("before-call", self._answer)

    def _keep_params(self, params, **kwargs) -> None:
        self._params.value = params

    def _answer(self, model, **kwargs):
        with self._lock:
            self.calls[model.name] = self.calls.get(model.name, 0) + 1
        params = getattr(self._params, "value", {}) or {}
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

    @staticmethod
    def _DescribeAlarms(params) -> dict:  # noqa: N802
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
        # The fleet's "in ALARM" scan: a few tenants with a firing alarm.
        return {
            "MetricAlarms": [
                {
                    "AlarmName": naming.alarm_name(f"{PREFIX}{i:05d}", "errors"),
                    "StateValue": "ALARM",
                    "AlarmDescription": f"opsconsole tenant {PREFIX}{i:05d}",
                }
                for i in range(0, 5000, 250)
            ]
        }

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


def cleanup() -> None:
    Job.objects.filter(subject_type="tenant", subject_id__startswith=PREFIX).delete()
    Tenant.objects.filter(slug__startswith=PREFIX).delete()
    User.objects.filter(username=USERNAME).delete()


def create_fleet(n: int) -> Tenant:
    now = datetime.now(UTC)
    Tenant.objects.bulk_create(
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
            for i in range(n)
        ],
        batch_size=1000,
    )
    tenant = Tenant.objects.get(slug=f"{PREFIX}00000")
    slug = tenant.slug
    function = naming.function_name(slug)
    for kind, name, identifier in [
        ("function", function, ""),
        ("alias", f"{function}:live", function),
        ("api", naming.api_name(slug), "bench0api"),
        ("db_instance", naming.db_instance_id(slug), naming.db_instance_id(slug)),
        ("log_group", naming.log_group_name(slug), ""),
        *[("alarm", naming.alarm_name(slug, w), "") for w in ("errors", "throttles", "db-cpu")],
    ]:
        TenantResource.objects.create(
            tenant=tenant, kind=kind, name=name, identifier=identifier, region=REGION
        )
    # A missing resource somewhere in the fleet: the fleet query for them has rows.
    other = Tenant.objects.get(slug=f"{PREFIX}00003")
    TenantResource.objects.create(
        tenant=other,
        kind="function",
        name=naming.function_name(other.slug),
        region=REGION,
        status="missing",
    )
    for i in range(10):
        Job.objects.create(
            kind="tenant_reconcile",
            subject_type="tenant",
            subject_id=slug,
            status=JobStatus.SUCCEEDED,
            finished_at=now - timedelta(minutes=37 * i + 5),
        )
    return tenant


def timed(client: Client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"bench pages: {url} answered {response.status_code}")
    return elapsed


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()

    fake = FakeAws()
    fake.install()
    prefix = f"bench-pages-{uuid.uuid4().hex[:8]}"
    cache_settings = {**settings.CACHES["default"], "KEY_PREFIX": prefix}
    cleanup()
    try:
        with override_settings(CACHES={"default": cache_settings}):
            health_tenant = create_fleet(args.tenants)
            user = User.objects.create_user(username=USERNAME, password=None, role=Role.VIEWER)
            client = Client()
            client.force_login(user)
            fleet_url = reverse("tenants:list") + "?sort=errors&page=2"

            # Cold: the fleet numbers are fetched (and counted) once.
            fake.calls.clear()
            cold_ms = timed(client, fleet_url)
            cold_calls = fake.calls.get("GetMetricData", 0)
            fake.calls.clear()

            warm = [timed(client, fleet_url) for _ in range(args.requests)]
            with CaptureQueriesContext(connection) as ctx:
                timed(client, fleet_url)
            queries = len(ctx.captured_queries)
            warm_calls = fake.calls.get("GetMetricData", 0)

            health_url = reverse("tenants:health", args=[health_tenant.slug])
            timed(client, health_url)  # warm up template loading
            fake.calls.clear()
            with override_settings(HEALTH_CACHE_SECONDS=0):
                health = [timed(client, health_url) for _ in range(15)]
            health_calls = fake.calls.get("GetMetricData", 0) / 15
            health_warm = statistics.median(timed(client, health_url) for _ in range(15))
            client.logout()
    finally:
        cleanup()

    bound = math.ceil(args.tenants * 3 / 500)
    p50, p95 = statistics.median(warm), percentile(warm, 95)
    health_ms = statistics.median(health)
    print(
        f"fleet page, cold cache: {cold_ms:.0f} ms, {cold_calls} GetMetricData calls "
        f"(bound ceil({args.tenants} x 3 / 500) = {bound})"
    )
    print(
        f"fleet page, warm cache: p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(warm)} views, "
        f"{queries} SQL queries, {warm_calls} GetMetricData calls"
    )
    print(
        f"health page, every read refreshed: median {health_ms:.1f} ms, "
        f"{health_calls:.0f} GetMetricData calls (1 standard + 1 percentile); "
        f"from the cache: median {health_warm:.1f} ms"
    )
    print(
        f"bench pages: tenants={args.tenants} p50_ms={p50:.0f} p95_ms={p95:.0f} "
        f"queries={queries} health_ms={health_ms:.0f} metric_calls_per_page={cold_calls}"
    )


if __name__ == "__main__":
    main()

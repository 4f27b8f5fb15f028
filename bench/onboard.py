"""bench onboard: onboard 50 shared-database tenants on the sandbox, count AWS calls and the
console's own time per tenant.

AWS is moto in-process (a fresh account, seeded first). Every boto3 call is counted and
timed through botocore's event hooks, so "console time" is the job's wall time minus the
time spent inside AWS calls: our code, the console database, and the real work in the
tenant's PostgreSQL database (CREATE ROLE/DATABASE, the release's migration), which is
also reported on its own. Tenants are ``bench-onb-NNN``; they and their databases are
removed at the end.

    python bench/onboard.py [--tenants 50]

Summary line: ``bench onboard: tenants=50 aws_calls_per_tenant=N console_ms_per_tenant=N``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")
os.environ.setdefault("OPSCONSOLE_SANDBOX", "1")
os.environ.pop("AWS_ENDPOINT_URL", None)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from moto import mock_aws  # noqa: E402

from opsconsole.aws import clients  # noqa: E402
from opsconsole.jobs.models import Job  # noqa: E402
from opsconsole.jobs.runner import job_execute  # noqa: E402
from opsconsole.jobs.services import job_create  # noqa: E402
from tenants.models import Tenant  # noqa: E402

PREFIX = "bench-onb-"


class AwsMeter:
    """Counts and times every boto3 call made through opsconsole.aws.clients."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds = 0.0
        self._started: dict[int, float] = {}
        self._hooked: set[int] = set()
        real = clients._client.__wrapped__

        def hooked(*args):
            client = real(*args)
            if id(client) not in self._hooked:
                client.meta.events.register("before-call", self._before)
                client.meta.events.register("after-call", self._after)
                self._hooked.add(id(client))
            return client

        clients._client = clients.functools.cache(hooked)

    def _before(self, model, context, **_):
        context["bench_started"] = time.perf_counter()
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1

    def _after(self, model, context, **_):
        self.seconds += time.perf_counter() - context.get("bench_started", time.perf_counter())


def _cleanup() -> None:
    from tests.tenants.conftest import drop_tenant_databases

    Job.objects.filter(subject_type="tenant", subject_id__startswith=PREFIX).delete()
    Tenant.objects.filter(slug__startswith=PREFIX).delete()
    drop_tenant_databases("tenant_bench_onb_")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=50)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    settings.AWS_ENDPOINT_URL = ""
    _cleanup()
    with mock_aws(config={"lambda": {"use_docker": False}}):
        clients.reset_clients()
        meter = AwsMeter()
        from tests.local_postgres import seed_in_process

        seed_in_process()
        per_tenant_ms, aws_ms, calls = [], [], []
        try:
            for n in range(args.tenants):
                tenant = Tenant.objects.create(
                    name=f"Bench {n}", slug=f"{PREFIX}{n:03d}", region=settings.AWS_REGION
                )
                before_calls, before_aws = sum(meter.calls.values()), meter.seconds
                started = time.perf_counter()
                job = job_create(
                    kind="tenant_provision", subject_type="tenant", subject_id=tenant.slug
                )
                while job_execute(job.pk, owner="bench") == "waiting":
                    Job.objects.filter(pk=job.pk).update(run_after=None)
                wall = time.perf_counter() - started
                job.refresh_from_db()
                if job.status != "succeeded":
                    raise SystemExit(f"{tenant.slug}: {job.error}")
                spent_aws = meter.seconds - before_aws
                per_tenant_ms.append((wall - spent_aws) * 1000)
                aws_ms.append(spent_aws * 1000)
                calls.append(sum(meter.calls.values()) - before_calls)
        finally:
            clients._client = clients.functools.cache(clients._client.__wrapped__)
            clients.reset_clients()
            _cleanup()
    top = ", ".join(
        f"{name} {count // args.tenants}" for name, count in meter.calls.most_common(12)
    )
    print(f"AWS calls per tenant: {statistics.mean(calls):.1f} (most: {top})")
    print(
        f"console time per tenant: median {statistics.median(per_tenant_ms):.0f} ms, "
        f"p95 {sorted(per_tenant_ms)[int(len(per_tenant_ms) * 0.95) - 1]:.0f} ms "
        f"(includes CREATE ROLE/DATABASE and the migration in the tenant database)"
    )
    print(
        f"time inside AWS calls (in-process moto, excluded): median "
        f"{statistics.median(aws_ms):.0f} ms per tenant"
    )
    print(
        f"bench onboard: tenants={args.tenants} "
        f"aws_calls_per_tenant={statistics.mean(calls):.1f} "
        f"console_ms_per_tenant={statistics.median(per_tenant_ms):.0f}"
    )


if __name__ == "__main__":
    main()

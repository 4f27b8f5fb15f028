"""Helpers for the end-to-end demo tests: tenants onboarded through the console on the
local AWS with real workers, and HTTP requests to their APIs."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse
from psycopg import sql

from opsconsole.jobs.models import Job
from opsconsole.sandbox.endpoints import sandbox_server_connection
from tenants import resources
from tenants.models import Tenant, TenantStatus

# Tenant databases live on the PostgreSQL server every checkout's tests share, named after
# the slug, and each scenario drops its own by prefix: without a tag of this test database
# one checkout's run dropped another's tenants mid-scenario. The tag is stable, so a run
# still drops what an earlier run of the same checkout left behind.
SLUG_TAG = "z" + format(zlib.crc32(settings.DATABASES["default"]["NAME"].encode()) & 0xFFFF, "04x")


def tagged(slug: str) -> str:
    """``slug`` with this test database's tag (see SLUG_TAG)."""
    return f"{SLUG_TAG}-{slug}"


def tenant_db_prefix(prefix: str) -> str:
    """The prefix of the tenant databases (and roles) of tagged slugs starting ``prefix``."""
    return f"tenant_{SLUG_TAG}_{prefix}"


ONBOARD_FORM = {
    "contact_email": "ops@example.com",
    "region": "us-east-1",
    "isolation": "shared",
    "db_instance_class": "db.t4g.micro",
    "db_allocated_storage_gb": "20",
    "db_backup_retention_days": "7",
    "serverless_min_acu": "0.5",
    "serverless_max_acu": "4",
    "lambda_memory_mb": "256",
    "lambda_timeout_s": "30",
}


def drop_databases(prefix: str) -> None:
    """Drop the tenant databases and roles named ``prefix*`` on the local PostgreSQL, even
    while a warm function environment still holds a connection to one (FORCE)."""
    with sandbox_server_connection() as conn:
        names = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{prefix}%"]
        ).fetchall()
        for (name,) in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        roles = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [f"{prefix}%"]
        ).fetchall()
        for (role,) in roles:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def onboard(client, slug: str, *, release: str, ring: int = 1) -> None:
    """What an admin does in the browser: the onboarding form, 'Onboard'."""
    data = {
        **ONBOARD_FORM,
        "name": slug.title(),
        "slug": slug,
        "ring": str(ring),
        "release": release,
        "form_token": f"token-{slug}",
        "action": "create",
    }
    response = client.post(reverse("tenants:onboard"), data)
    assert response.status_code == 302, response.content.decode()[-2000:]


def _logs(workers) -> str:
    return "\n".join(f"--- {w.log_path.name}\n{w.log_path.read_text()[-3000:]}" for w in workers)


def wait_active(slugs: list[str], workers, *, timeout: float = 120) -> list[Tenant]:
    """Every tenant ACTIVE (onboarding succeeded), or the failing job's steps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tenants = list(Tenant.objects.filter(slug__in=slugs))
        failed = [t for t in tenants if t.status == TenantStatus.FAILED]
        if failed:
            job = Job.objects.filter(subject_type="tenant", subject_id=failed[0].slug).first()
            steps = [(s.name, s.status, s.error) for s in job.steps.all()] if job else []
            raise AssertionError(f"{failed[0].slug} failed: {steps}\n{_logs(workers)}")
        if len(tenants) == len(slugs) and all(t.status == TenantStatus.ACTIVE for t in tenants):
            return sorted(tenants, key=lambda t: slugs.index(t.slug))
        for worker in workers:
            assert worker.poll() is None, _logs(workers)
        time.sleep(0.3)
    states = dict(Tenant.objects.filter(slug__in=slugs).values_list("slug", "status"))
    raise AssertionError(f"tenants not active in {timeout} s: {states}\n{_logs(workers)}")


@dataclass
class Answer:
    status: int
    body: dict
    headers: dict


def api_url(tenant: Tenant) -> str:
    """The tenant's HTTP API on the local AWS, from its resource record."""
    record = resources.find(tenant, kind="api")
    assert record is not None and record.identifier, f"{tenant.slug} has no API recorded"
    return f"{settings.AWS_ENDPOINT_URL}/_aws/execute-api/{record.identifier}"


def call(target: Tenant | str, method: str, path: str, body: dict | str | None = None) -> Answer:
    """One HTTP request through a tenant's API (the tenant, or its ``api_url``), as any
    client would send it. Threads pass the URL: it is read from the database."""
    base = target if isinstance(target, str) else api_url(target)
    data = None
    if body is not None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
    request = urllib.request.Request(  # noqa: S310 - the local AWS
        base + path,
        data=data,
        method=method,
        headers={"User-Agent": "test-e2e", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            status, raw, headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, raw, headers = exc.code, exc.read(), dict(exc.headers)
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = {"raw": raw.decode("utf-8", "replace")}
    return Answer(status, parsed, {k.lower(): v for k, v in headers.items()})

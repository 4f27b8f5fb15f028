"""Demo traffic: real HTTP requests to every active tenant's HTTP API, so the sandbox's
health pages chart what really happened (invocations, durations, errors, log lines).

Each round sends a handful of requests per tenant, the way a user of the demo app would:
``GET /healthz``, ``GET /notes``, ``POST /notes``, now and then a request the app refuses
(a body that is not JSON: 400) and, more rarely, a note too long for the database, which
the demo app does not catch (an unhandled error: Lambda's Errors metric, a 500 from the
API, a traceback in the function's log). Every request carries
``User-Agent: opsconsole-demo-traffic``, which the demo app writes into its log line, so
demo traffic is told apart from anyone's own.

Sandbox only (``opsconsole.sandbox.tasks.sandbox_demo_traffic``, every
``SANDBOX_DEMO_TRAFFIC_SECONDS``): the requests go to the local AWS's address for each API,
``{AWS_ENDPOINT_URL}/_aws/execute-api/<api-id>/``.
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from tenants.models import ResourceStatus, TenantResource, TenantStatus

logger = logging.getLogger(__name__)

USER_AGENT = "opsconsole-demo-traffic"
# How often a round adds a request the app refuses, and a note too long for the database.
BAD_REQUEST_CHANCE = 0.2
OVERLONG_NOTE_CHANCE = 0.1
NOTE_LIMIT = 1000  # the notes table's check (demo migration 0001)


@dataclass(frozen=True)
class DemoRequest:
    method: str
    path: str
    body: bytes | None = None


@dataclass(frozen=True)
class Sent:
    tenant: str
    method: str
    path: str
    status: int | None  # None: no HTTP answer at all
    ms: float
    error: str = ""


def api_urls() -> dict[str, str]:
    """Each active tenant's API base URL on the local AWS, by slug (tenants whose API is
    not recorded yet are left out)."""
    base = settings.AWS_ENDPOINT_URL.rstrip("/")
    records = TenantResource.objects.filter(
        kind="api",
        status=ResourceStatus.PRESENT,
        tenant__status=TenantStatus.ACTIVE,
    ).exclude(identifier="")
    return {
        slug: f"{base}/_aws/execute-api/{api_id}"
        for slug, api_id in records.values_list("tenant__slug", "identifier").order_by(
            "tenant__slug"
        )
    }


def round_of_requests(rng: random.Random) -> list[DemoRequest]:
    """What one round sends to one tenant."""
    stamp = timezone.now().strftime("%H:%M:%S")
    note = {"text": f"demo note at {stamp}", "author": "demo traffic"}
    requests = [
        DemoRequest("GET", "/healthz"),
        DemoRequest("GET", "/notes"),
        DemoRequest("POST", "/notes", json.dumps(note).encode()),
    ]
    if rng.random() < BAD_REQUEST_CHANCE:
        requests.append(DemoRequest("POST", "/notes", b"{this is not json"))
    if rng.random() < OVERLONG_NOTE_CHANCE:
        overlong = {"text": "x" * (NOTE_LIMIT + 1), "author": "demo traffic"}
        requests.append(DemoRequest("POST", "/notes", json.dumps(overlong).encode()))
    return requests


def send(url: str, request: DemoRequest, *, timeout_s: float) -> tuple[int | None, str]:
    """(HTTP status, error text) of one request; no answer at all is (None, why)."""
    headers = {"User-Agent": USER_AGENT}
    if request.body is not None:
        headers["Content-Type"] = "application/json"
    outgoing = urllib.request.Request(  # noqa: S310 - http(s) URLs we built ourselves
        url + request.path, data=request.body, headers=headers, method=request.method
    )
    try:
        with urllib.request.urlopen(outgoing, timeout=timeout_s) as answer:  # noqa: S310
            answer.read()
            return answer.status, ""
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code, ""
    except (urllib.error.URLError, OSError) as exc:
        return None, str(getattr(exc, "reason", exc))


def _tenant_round(slug: str, url: str, rng: random.Random, timeout_s: float) -> list[Sent]:
    sent = []
    for request in round_of_requests(rng):
        started = time.perf_counter()
        status, error = send(url, request, timeout_s=timeout_s)
        sent.append(
            Sent(
                tenant=slug,
                method=request.method,
                path=request.path,
                status=status,
                ms=(time.perf_counter() - started) * 1000,
                error=error,
            )
        )
    return sent


def send_demo_traffic(
    *,
    slugs: list[str] | None = None,
    rng: random.Random | None = None,
    timeout_s: float = 10,
    workers: int = 8,
) -> dict:
    """One round of demo traffic to every active tenant (or to ``slugs``); a summary.

    Tenants are served in parallel (``workers``), each tenant's requests one after the
    other, as one user would send them.
    """
    rng = rng or random.Random()
    urls = api_urls()
    if slugs is not None:
        urls = {slug: url for slug, url in urls.items() if slug in slugs}
    # One generator per tenant, drawn here: the threads never share one.
    seeds = {slug: rng.random() for slug in urls}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rounds = list(
            pool.map(
                lambda slug: _tenant_round(slug, urls[slug], random.Random(seeds[slug]), timeout_s),
                urls,
            )
        )
    sent = [s for tenant_round in rounds for s in tenant_round]
    statuses = Counter(str(s.status) if s.status else "no answer" for s in sent)
    unanswered = [s for s in sent if s.status is None]
    summary = {
        "tenants": len(urls),
        "requests": len(sent),
        "statuses": dict(sorted(statuses.items())),
        "unanswered": [f"{s.tenant} {s.method} {s.path}: {s.error}" for s in unanswered[:10]],
    }
    if sent:
        logger.info(
            "Demo traffic: %d requests to %d tenants, statuses %s",
            len(sent),
            len(urls),
            summary["statuses"],
        )
    return summary

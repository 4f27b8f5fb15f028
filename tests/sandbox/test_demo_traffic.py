"""Demo traffic: which tenants it reaches, what it sends, how it is labelled.

An HTTP server on 127.0.0.1 stands where the local AWS serves tenants' APIs and records
every request; tests/integration/test_demo_health.py sends the same traffic through the
real local AWS to real demo apps.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from opsconsole.sandbox import traffic
from opsconsole.sandbox.tasks import sandbox_demo_traffic
from tenants import resources
from tenants.models import Tenant, TenantStatus

pytestmark = pytest.mark.django_db


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "ua": self.headers.get("user-agent"),
                "body": body,
            }
        )
        status = 200
        if self.command == "POST":
            try:
                text = json.loads(body)["text"]
            except ValueError:
                status = 400
            else:
                status = 500 if len(text) > traffic.NOTE_LIMIT else 201
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def api_server(settings):
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{server.server_address[1]}"
    yield _Recorder.seen
    server.shutdown()


def _tenant(slug: str, *, status=TenantStatus.ACTIVE, api_id: str | None = "api0001") -> Tenant:
    tenant = Tenant.objects.create(name=slug, slug=slug, region="us-east-1", status=status)
    if api_id:
        resources.record(tenant, kind="api", name=f"opsconsole-{slug}", identifier=api_id)
    return tenant


def test_a_round_reaches_each_active_tenants_api_labelled_as_demo_traffic(api_server):
    _tenant("dt-one", api_id="aaa111")
    _tenant("dt-two", api_id="bbb222")
    _tenant("dt-suspended", status=TenantStatus.SUSPENDED, api_id="ccc333")
    _tenant("dt-no-api-yet", api_id=None)

    summary = traffic.send_demo_traffic(rng=random.Random(7))

    assert summary["tenants"] == 2
    assert summary["requests"] == len(api_server)
    assert {r["ua"] for r in api_server} == {"opsconsole-demo-traffic"}
    by_api: dict[str, list[tuple[str, str]]] = {}
    for request in api_server:
        _, prefix, service, api_id, path = request["path"].split("/", 4)
        assert (prefix, service) == ("_aws", "execute-api")
        by_api.setdefault(api_id, []).append((request["method"], "/" + path))
    assert set(by_api) == {"aaa111", "bbb222"}
    for sent in by_api.values():
        # Each tenant's round starts with the same three, in a user's order.
        assert sent[:3] == [("GET", "/healthz"), ("GET", "/notes"), ("POST", "/notes")]
    assert summary["unanswered"] == []


def test_now_and_then_a_bad_request_and_an_overlong_note(api_server):
    _tenant("dt-busy", api_id="ddd444")

    for seed in range(40):
        traffic.send_demo_traffic(rng=random.Random(seed))

    posts = [r["body"] for r in api_server if r["method"] == "POST"]
    bad = [b for b in posts if not b.startswith(b'{"')]
    overlong = [b for b in posts if b.startswith(b'{"') and len(b) > traffic.NOTE_LIMIT]
    # 40 rounds at 20 % and 10 %: both show up, neither dominates.
    assert 2 <= len(bad) <= 20
    assert 1 <= len(overlong) <= 12
    assert len(posts) == 40 + len(bad) + len(overlong)


def test_an_api_that_does_not_answer_is_reported_not_raised(settings):
    from opsconsole.sandbox.services import free_port

    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    _tenant("dt-gone", api_id="eee555")

    summary = traffic.send_demo_traffic(rng=random.Random(1), timeout_s=2)

    assert summary["statuses"] == {"no answer": summary["requests"]}
    assert summary["unanswered"][0].startswith("dt-gone GET /healthz: ")


def test_the_task_refuses_outside_the_sandbox(settings, api_server):
    _tenant("dt-prod", api_id="fff666")
    settings.SANDBOX = False

    assert sandbox_demo_traffic() == {"skipped": "not the sandbox"}
    assert api_server == []


def test_the_beat_entry_is_there_in_the_sandbox_only():
    def schedule(**env: str) -> dict:
        code = (
            "import json, django; django.setup(); from django.conf import settings; "
            "print(json.dumps({k: v.get('task') for k, v in "
            "settings.CELERY_BEAT_SCHEDULE.items()}))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "opsconsole.settings", **env},
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    sandbox = schedule(OPSCONSOLE_SANDBOX="1", SANDBOX_DEMO_TRAFFIC_SECONDS="60")
    assert sandbox["sandbox-demo-traffic"] == "opsconsole.sandbox.tasks.sandbox_demo_traffic"
    assert "sandbox-demo-traffic" not in schedule(
        OPSCONSOLE_SANDBOX="1", SANDBOX_DEMO_TRAFFIC_SECONDS="0"
    )

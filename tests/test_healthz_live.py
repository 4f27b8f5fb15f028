"""/healthz of the real web server (gunicorn, as deployed) when its database really goes
away: the connection to PostgreSQL runs through a proxy the test cuts, so the server sees
refused connections and reset sockets, not a patched function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dj_database_url
import pytest

from opsconsole.sandbox import services
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


def _healthz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=20) as r:  # noqa: S310
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def web_behind_proxy(transactional_db, settings, live_aws, tmp_path):
    url = dj_database_url.parse(os.environ["DATABASE_URL"])
    proxy = TcpProxy(url.get("HOST") or "127.0.0.1", int(url.get("PORT") or 5432)).start()
    port = services.free_port()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{url.get('USER') or 'postgres'}@127.0.0.1:{proxy.port}/"
        f"{settings.DATABASES['default']['NAME']}",
        AWS_ENDPOINT_URL=live_aws,
        OPSCONSOLE_SANDBOX="1",
    )
    log = tmp_path / "web.log"
    gunicorn = Path(sys.executable).parent / "gunicorn"
    proc = subprocess.Popen(
        [str(gunicorn), "opsconsole.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not services.port_open("127.0.0.1", port):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.1)
    yield port, proxy, log
    services.stop_process(proc)
    proxy.cut()


def test_healthz_is_503_while_the_database_is_unreachable_and_200_when_back(web_behind_proxy):
    # An anonymous caller (as a load balancer is) gets up or down, never which check failed
    # or its error text: tests/test_health.py shows a console member the details.
    port, proxy, log = web_behind_proxy
    status, body = _healthz(port)
    assert (status, body) == (200, {"status": "ok"}), body

    proxy.cut()
    status, body = _healthz(port)
    assert (status, body) == (503, {"status": "down"}), (body, log.read_text()[-2000:])

    proxy.start()  # the database is back on the same address
    status, body = _healthz(port)
    assert (status, body) == (200, {"status": "ok"}), (body, log.read_text()[-2000:])

"""A private redis-server for the drills that kill or restart it (the machine's own
Redis, shared by everything else, is never touched)."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from opsconsole.sandbox import services


def start_redis(port: int, tmp_path) -> subprocess.Popen:
    # The drill needs its own broker to kill; without the binary it fails and says why
    # rather than skipping quietly.
    if not shutil.which("redis-server"):
        pytest.fail("the broker-outage drill needs redis-server: apt-get install redis-server")
    proc = subprocess.Popen(
        [
            shutil.which("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    for _ in range(100):
        if services.port_open("127.0.0.1", port):
            return proc
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def reset_pools(app) -> None:
    """Make the app connect afresh to whatever broker_url says now."""
    from kombu import pools

    pools.reset()  # kombu keeps producer pools per broker URL, process-wide
    app._pool = None
    app.amqp._producer_pool = None

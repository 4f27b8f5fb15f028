"""Execution environments' lifecycle, on a private local AWS with small limits: the warm
cap evicts the least recently used, idle ones stop, one version's cap queues then
throttles, and the environments go with the server."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from opsconsole.sandbox import services
from tests.sandbox.test_lambda_common import Aws, wait_for

pytestmark = pytest.mark.integration

PID = """\
import os, time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return os.getpid()
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    saved = dict(os.environ)
    os.environ.update(
        LOCALAWS_MAX_WARM="2",
        LOCALAWS_IDLE_S="1.5",
        LOCALAWS_MAX_PER_VERSION="1",
        LOCALAWS_QUEUE_S="0.5",
        LOCALAWS_STATE_DIR=str(tmp_path_factory.mktemp("localaws-state")),
    )
    try:
        port = services.free_port()
        proc = services.start_local_aws(
            port=port, log_path=tmp_path_factory.mktemp("localaws") / "log"
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
    yield proc, Aws(f"http://127.0.0.1:{port}")
    services.stop_process(proc)


def test_warm_cap_stops_the_least_recently_used_idle_environment(small_server):
    _, aws = small_server
    a, b, c = (aws.function({"app.py": PID}) for _ in range(3))
    pid_a = aws.invoke(a)[1]
    pid_b = aws.invoke(b)[1]
    assert alive(pid_a) and alive(pid_b)
    pid_c = aws.invoke(c)[1]
    assert wait_for(lambda: not alive(pid_a), timeout=5)
    assert alive(pid_b) and alive(pid_c)
    assert aws.invoke(a)[1] != pid_a  # a cold start again
    assert wait_for(lambda: not alive(pid_b), timeout=5)


def test_idle_environment_stops_after_idle_s(small_server):
    _, aws = small_server
    name = aws.function({"app.py": PID})
    pid = aws.invoke(name)[1]
    time.sleep(0.5)
    assert alive(pid)
    assert wait_for(lambda: not alive(pid), timeout=6)


def test_one_version_cap_queues_briefly_then_throttles(small_server):
    _, aws = small_server
    name = aws.function({"app.py": PID})
    pid = aws.invoke(name)[1]
    results: list = []
    short = threading.Thread(target=lambda: results.append(aws.invoke(name, {"sleep": 0.2})[1]))
    short.start()
    time.sleep(0.05)
    assert aws.invoke(name)[1] == pid  # waited for the one environment, then ran in it
    short.join()
    assert results == [pid]

    slow = threading.Thread(target=aws.invoke, args=(name, {"sleep": 3}))
    slow.start()
    time.sleep(1)  # the slow invoke holds the one environment
    with pytest.raises(aws.lam.exceptions.TooManyRequestsException) as caught:
        aws.invoke(name)
    assert caught.value.response["Reason"] == "ConcurrentInvocationLimitExceeded"
    slow.join()
    assert aws.metric_sum("Throttles", {"FunctionName": name}) == 1


def test_environments_are_in_the_servers_process_group_and_stop_with_it(tmp_path):
    saved = dict(os.environ)
    os.environ["LOCALAWS_STATE_DIR"] = str(tmp_path / "state")
    try:
        port = services.free_port()
        proc = services.start_local_aws(port=port, log_path=tmp_path / "log")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        aws = Aws(f"http://127.0.0.1:{port}")
        pids = [aws.invoke(aws.function({"app.py": PID}))[1] for _ in range(2)]
        assert all(os.getpgid(pid) == os.getpgid(proc.pid) for pid in pids)
    finally:
        services.stop_process(proc)
    assert wait_for(lambda: not any(alive(pid) for pid in pids), timeout=5)


def test_environments_are_killed_when_the_server_exits_on_sigterm(tmp_path):
    """Only the server gets the signal (not its group): it kills its children itself."""
    saved = dict(os.environ)
    os.environ["LOCALAWS_STATE_DIR"] = str(tmp_path / "state")
    try:
        port = services.free_port()
        proc = services.start_local_aws(port=port, log_path=tmp_path / "log")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        aws = Aws(f"http://127.0.0.1:{port}")
        pid = aws.invoke(aws.function({"app.py": PID}))[1]
        proc.terminate()
        proc.wait(timeout=10)
    finally:
        services.stop_process(proc)
    assert wait_for(lambda: not alive(pid), timeout=5)

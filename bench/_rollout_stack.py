"""The processes bench/rollout.py runs and measures: the local AWS with its Lambda model,
Celery workers (prefork) and beat, gunicorn, each as `make run` starts them; and the CPU
and memory of process trees (psutil), the console's and the PostgreSQL and Redis
servers'.

No Django here: the bench imports this before Django is set up, to put the local AWS's
address in the environment the settings read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opsconsole.sandbox import services  # noqa: E402

BIN = Path(sys.executable).parent


@dataclass
class Stack:
    logs: Path
    env: dict[str, str]
    aws: subprocess.Popen | None = None
    aws_url: str = ""
    web_port: int = 0
    console: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start_aws(self) -> str:
        port = services.free_port()
        self.aws = services.start_local_aws(port=port, log_path=self.logs / "aws.log")
        self.aws_url = f"http://127.0.0.1:{port}"
        return self.aws_url

    def start_console(self, *, workers: int, concurrency: int) -> None:
        """Workers, beat and gunicorn with the arguments `make run` gives them."""
        argv = {
            f"worker{i}": [
                str(BIN / "celery"),
                "-A",
                "opsconsole",
                "worker",
                "-l",
                "WARNING",
                "--concurrency",
                str(concurrency),
                "-n",
                f"bench-rollout-{i}@%h",
            ]
            for i in range(workers)
        }
        argv["beat"] = [
            str(BIN / "celery"),
            "-A",
            "opsconsole",
            "beat",
            "-l",
            "WARNING",
            "--schedule",
            str(self.logs / "celerybeat-schedule"),
        ]
        self.web_port = services.free_port()
        argv["web"] = [
            str(BIN / "gunicorn"),
            "opsconsole.wsgi",
            "--bind",
            f"127.0.0.1:{self.web_port}",
            "--workers",
            "2",
            "--threads",
            "4",
        ]
        for name, args in argv.items():
            log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - lives with the child
            self.console[name] = subprocess.Popen(
                args,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 90
        while not services.port_open("127.0.0.1", self.web_port):
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 90 s; see {self.logs}")
            time.sleep(0.2)

    def check(self) -> None:
        for name, proc in self.console.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}); see {self.logs}")

    def stop(self) -> None:
        for proc in [*self.console.values(), *([self.aws] if self.aws else [])]:
            services.stop_process(proc)
        self.console.clear()
        self.aws = None

    # --- the Lambda model ------------------------------------------------------------
    def model(self, method: str = "GET", **body) -> dict:
        request = urllib.request.Request(  # noqa: S310 - the local AWS
            f"{self.aws_url}/_localaws/lambda-model",
            method=method,
            data=json.dumps(body).encode() if method == "POST" else None,
        )
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return json.loads(answer.read())

    # --- measuring -------------------------------------------------------------------
    def console_pids(self) -> list[int]:
        return [p.pid for p in self.console.values()]


def process_tree(pid: int) -> list:
    """``pid``'s process and all its descendants ([] once it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu_s(root_pids: list[int]) -> float:
    """CPU seconds (user + system) of the trees under ``root_pids`` so far: every live
    process's own, plus what reaped children left in their parent's ``children_*``."""
    total, seen = 0.0, set()
    for pid in root_pids:
        for proc in process_tree(pid):
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def server_pids(name: str, port: int) -> list[int]:
    """The pid of the server listening on ``port`` (PostgreSQL's postmaster, redis-server),
    found through its listening socket; [] when it is not on this machine's view."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            try:
                if name in psutil.Process(conn.pid).name():
                    return [conn.pid]
            except psutil.NoSuchProcess:
                continue
    return []


class RssSampler:
    """Peak RSS per process of the worker trees, sampled while the rollout runs."""

    def __init__(self, root_pids: list[int]) -> None:
        self.roots = root_pids
        self.peak: dict[int, int] = {}

    def sample(self) -> None:
        for pid in self.roots:
            for proc in process_tree(pid):
                try:
                    rss = proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                self.peak[proc.pid] = max(self.peak.get(proc.pid, 0), rss)

    def peak_mb(self) -> list[float]:
        return sorted((v / 2**20 for v in self.peak.values()), reverse=True)


def env_for(*, aws_url: str, run: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ENDPOINT_URL=aws_url,
        OPSCONSOLE_SANDBOX="1",
        # The bench's own budget and cache keys in Redis, never the console's.
        RATE_BUDGET_PREFIX=f"bench-rollout-{run}",
        OPSCONSOLE_CACHE_PREFIX=f"bench-rollout-{run}",
        # No demo traffic: its requests would reach the tenants' APIs mid-rollout.
        SANDBOX_DEMO_TRAFFIC_SECONDS="0",
        PYTHONUNBUFFERED="1",
    )
    return env


class BackendSampler:
    """CPU of the PostgreSQL backends serving this bench (their command line names one of
    ``databases``), sampled: the whole server's figure includes everyone else's load on a
    shared server, this one misses what a backend spends after its last sample (short
    connections, such as a tenant's migration, are undercounted)."""

    def __init__(self, postmaster: list[int], databases: list[str]) -> None:
        self.roots = postmaster
        self.databases = databases
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.sample(start=True)

    def sample(self, *, start: bool = False) -> None:
        for pid in self.roots:
            try:
                children = psutil.Process(pid).children()
            except psutil.NoSuchProcess:
                continue
            for proc in children:
                try:
                    line = " ".join(proc.cmdline())
                    if not any(f" {db}" in line for db in self.databases):
                        continue
                    t = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                cpu = t.user + t.system
                if start:
                    self.first[proc.pid] = cpu
                self.first.setdefault(proc.pid, 0.0)
                self.last[proc.pid] = cpu

    def cpu_s(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)

"""Lambda execution environments: pools of worker processes per function version.

Per function version (``$LATEST`` or a published number, in one region) a pool of
environments (``lambda_environment``). An invoke takes an idle one (warm) or starts one (a
cold start: the init duration runs from the spawn to the runtime's first ``/next``), hands
it the event through the Runtime API (``runtime_api``) and waits for the answer until the
function's timeout, then gives it back for the next invoke. An idle environment stops
after ``config.idle_s``; at most ``config.max_warm`` exist at once (the least recently
used idle one stops to make room) and at most ``config.max_per_version`` run one version
at once (beyond that an invoke waits up to ``config.queue_s`` for one to free, then is
throttled). Reserved concurrency N is at most N invokes of the function at once; beyond,
a throttle at once. A new code or configuration on a version retires its environments.

A timed-out environment is killed and discarded, as is one whose process exited. The
processes are children of the server in its process group (no session of their own), so
stopping the server's group stops them; they are killed at interpreter exit too.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from opsconsole.sandbox.localaws import lambda_code, lambda_images
from opsconsole.sandbox.localaws.config import LocalAwsConfig
from opsconsole.sandbox.localaws.lambda_code import CannotRun, Launch
from opsconsole.sandbox.localaws.lambda_environment import (
    Environment,
    FunctionVersion,
    OutputPump,
    RunOutcome,
)
from opsconsole.sandbox.localaws.runtime_api import Invocation, RuntimeApi

__all__ = ["Executor", "FunctionVersion", "RunOutcome", "Throttled"]

# What Lambda keeps under config.state_dir: zips, layers, images, ECR blobs, bytecode, the
# Python runtime directory, per-environment scratch.
STATE_PARTS = ("code", "opt", "images", "ecr-blobs", "pycache", "runtime", "tmp")


class Throttled(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(eq=False)
class Pool:
    fingerprint: tuple
    idle: list[Environment] = field(default_factory=list)
    size: int = 0
    retired: bool = False


class Executor:
    def __init__(self, config: LocalAwsConfig) -> None:
        self.config = config
        self.api = RuntimeApi()
        self.pump = OutputPump()
        self._cond = threading.Condition()
        self._pools: dict[tuple[str, str, str], Pool] = {}
        self._total = 0
        self._inflight: dict[str, int] = defaultdict(int)
        self._inflight_total = 0
        self._all: set[Environment] = set()
        self._closed = False
        threading.Thread(target=self._reap, name="lambda-reaper", daemon=True).start()
        atexit.register(self.shutdown)

    def launch_for(self, spec: FunctionVersion) -> Launch:
        if spec.package_type == "Image":
            return lambda_images.image_launch(self.config, spec)
        model = spec.model
        return lambda_code.zip_launch(
            state_dir=self.config.state_dir,
            digest=getattr(model, "code_digest", "") or "none",
            code=getattr(model, "code_bytes", b"") or b"",
            runtime=spec.runtime,
            handler=spec.handler,
            layers=self._layers(spec),
        )

    @staticmethod
    def _layers(spec: FunctionVersion) -> list[tuple[str, bytes]]:
        from moto.awslambda.utils import get_backend

        from opsconsole.sandbox.localaws.moto_state import ACCOUNT_ID

        found = []
        for layer in getattr(spec.model, "layers", None) or []:
            version = get_backend(ACCOUNT_ID, spec.region).layers_versions_by_arn(layer["Arn"])
            if version is None or not getattr(version, "code_bytes", b""):
                raise CannotRun(
                    "Sandbox.LayerUnavailable",
                    f"The local AWS holds no content for layer {layer['Arn']}.",
                )
            found.append((version.code_digest, version.code_bytes))
        return found

    def run(
        self,
        spec: FunctionVersion,
        invocation: Invocation,
        *,
        reserved: int | None,
    ) -> RunOutcome:
        """Run one invoke; raises Throttled when no environment may take it."""
        env, concurrency, total = self._acquire(spec, reserved)
        outcome = RunOutcome(
            request_id=invocation.request_id,
            kind="exit",
            concurrency=concurrency,
            account_concurrency=total,
        )
        try:
            if env.proc is None and not env.ready.is_set():
                env.start()
            return env.run(invocation, outcome)
        finally:
            self._release(env, reusable=outcome.reusable and not env.dead)

    # --- pools (all under self._cond) ----------------------------------------------------

    def _pool(self, spec: FunctionVersion, to_stop: list[Environment]) -> Pool:
        pool = self._pools.get(spec.key)
        if pool is not None and pool.fingerprint != spec.fingerprint:
            pool.retired = True  # code or configuration changed: new environments
            for env in list(pool.idle):
                self._discard(env)
                to_stop.append(env)
            pool = None
        if pool is None:
            pool = self._pools[spec.key] = Pool(spec.fingerprint)
        return pool

    def _acquire(self, spec: FunctionVersion, reserved: int | None) -> tuple[Environment, int, int]:
        to_stop: list[Environment] = []
        deadline = None
        try:
            with self._cond:
                if reserved is not None and self._inflight[spec.arn] >= reserved:
                    raise Throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
                while True:
                    if self._closed:
                        raise Throttled("ConcurrentInvocationLimitExceeded")
                    pool = self._pool(spec, to_stop)
                    env = None
                    while pool.idle and env is None:
                        candidate = pool.idle.pop()
                        if candidate.dead:
                            self._discard(candidate)
                        else:
                            env = candidate
                    room = env is None and pool.size < self.config.max_per_version
                    if room and (self._total < self.config.max_warm or self._evict(to_stop)):
                        env = Environment(self, spec, pool)
                        pool.size += 1
                        self._total += 1
                        self._all.add(env)
                    if env is not None:
                        self._inflight[spec.arn] += 1
                        self._inflight_total += 1
                        return env, self._inflight[spec.arn], self._inflight_total
                    now = time.monotonic()
                    deadline = deadline or now + self.config.queue_s
                    if now >= deadline:
                        raise Throttled("ConcurrentInvocationLimitExceeded")
                    self._cond.wait(deadline - now)
        finally:
            for env in to_stop:
                env.stop()

    def _evict(self, to_stop: list[Environment]) -> bool:
        """Stop the least recently used idle environment of any function."""
        oldest = None
        for pool in self._pools.values():
            for env in pool.idle:
                if oldest is None or env.last_used < oldest.last_used:
                    oldest = env
        if oldest is None:
            return False
        self._discard(oldest)
        to_stop.append(oldest)
        return True

    def _discard(self, env: Environment) -> None:
        if env.counted:
            env.counted = False
            env.pool.size -= 1
            self._total -= 1
            self._all.discard(env)
        if env in env.pool.idle:
            env.pool.idle.remove(env)
        self._cond.notify_all()

    def _release(self, env: Environment, *, reusable: bool) -> None:
        with self._cond:
            self._inflight[env.spec.arn] -= 1
            self._inflight_total -= 1
            keep = reusable and env.counted and not env.pool.retired
            if keep:
                env.last_used = time.monotonic()
                env.pool.idle.append(env)
                self._cond.notify_all()
            else:
                self._discard(env)
        if not keep:
            env.stop()

    def forget(self, env: Environment) -> None:
        """An environment's process exited (crash, kill, timeout)."""
        with self._cond:
            if env in env.pool.idle:
                self._discard(env)

    def environments(self) -> list[dict[str, Any]]:
        """What runs now (for tests and diagnostics)."""
        with self._cond:
            return [
                {
                    "function": env.spec.name,
                    "version": env.spec.version,
                    "pid": env.proc.pid if env.proc else None,
                    "idle": env in env.pool.idle,
                    "stream": env.stream,
                }
                for env in self._all
            ]

    def _reap(self) -> None:
        while not self._closed:
            time.sleep(max(0.05, min(self.config.idle_s / 4, 5.0)))
            cutoff = time.monotonic() - self.config.idle_s
            with self._cond:
                stale = [
                    env
                    for pool in self._pools.values()
                    for env in pool.idle
                    if env.last_used < cutoff or env.dead
                ]
                for env in stale:
                    self._discard(env)
                for key in [k for k, p in self._pools.items() if p.size == 0 and not p.idle]:
                    del self._pools[key]
            for env in stale:
                env.stop()

    def shutdown(self) -> None:
        """Kill every environment, then drop what this server unpacked (the state
        directory is per port: nothing in it outlives the moto state it stood for)."""
        with self._cond:
            self._closed = True
            envs = list(self._all)
        for env in envs:
            env.stop()
        for env in envs:
            if env.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    env.proc.wait(timeout=2)
        for part in STATE_PARTS:
            shutil.rmtree(self.config.state_dir / part, ignore_errors=True)

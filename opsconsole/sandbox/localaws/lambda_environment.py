"""One Lambda execution environment: a runtime process, its Runtime API channel, its
output and its log stream, and what one invoke in it came to (``RunOutcome``).

Everything a process writes to stdout/stderr is read by one pump thread for all
environments and attributed to the invoke in flight (lines written before the runtime
posts its answer are always included: the invoke drains the pipe itself before closing
its log). A process that exits is noticed by the same thread (pipe closed, or a poll).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import shutil
import subprocess
import threading
import time
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole.sandbox.localaws.lambda_code import CannotRun, Launch
from opsconsole.sandbox.localaws.runtime_api import Invocation

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from opsconsole.sandbox.localaws.lambda_executor import Executor, Pool

# Lambda's limit on the Init phase of an on-demand environment.
INIT_LIMIT_S = 10.0
# Log lines kept per environment between two invokes (a chatty background thread).
_MAX_BUFFERED_LINES = 10_000
_SIGNALS = {9: "killed", 15: "terminated", 11: "segmentation fault", 6: "aborted", 2: "interrupt"}


@dataclass(eq=False)
class FunctionVersion:
    """What an environment needs of one function version (read from moto's model)."""

    region: str
    name: str
    arn: str  # unqualified
    version: str
    runtime: str | None
    handler: str | None
    memory_mb: int
    timeout_s: float
    variables: dict[str, str]
    package_type: str
    fingerprint: tuple
    model: Any  # moto's LambdaFunction: code bytes / image URI, read at a cold start

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.region, self.arn, self.version)


@dataclass
class RunOutcome:
    request_id: str
    kind: str  # ok | function_error | timeout | exit | init_error | cannot_run | too_large
    payload: bytes = b""
    error_type: str | None = None
    duration_ms: float = 0.0
    init_ms: float | None = None
    max_memory_mb: int = 0
    pre_lines: list[tuple[int, str]] = field(default_factory=list)  # before START
    lines: list[tuple[int, str]] = field(default_factory=list)  # between START and END
    stream: str = ""
    concurrency: int = 1  # invokes of this function in flight, this one included
    account_concurrency: int = 1  # of all functions
    env_id: str = ""
    pid: int | None = None

    @property
    def reusable(self) -> bool:
        return self.kind in ("ok", "function_error", "too_large")


def _now_ms() -> int:
    return int(time.time() * 1000)


class Output:
    """One process's stdout+stderr pipe, split into timestamped lines."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self.lock = threading.Lock()
        self.lines: list[tuple[int, str]] = []
        self.dropped = 0
        self._partial = b""
        self._partial_ts = 0
        self.eof = False
        self.closed = False

    def close(self) -> None:
        """Only the pump closes the pipe, after unregistering it (no fd is reused while a
        selector still holds its number)."""
        with self.lock:
            if not self.closed:
                self.closed = True
                self.eof = True
                os.close(self.fd)

    def _read(self) -> None:  # under self.lock
        while not self.eof:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.eof = True
                return
            now = _now_ms()
            chunks = (self._partial + data).split(b"\n")
            ts = self._partial_ts if self._partial else now
            for chunk in chunks[:-1]:
                self._add(ts, chunk)
                ts = now
            self._partial = chunks[-1]
            self._partial_ts = ts

    def _add(self, ts: int, raw: bytes) -> None:
        if len(self.lines) >= _MAX_BUFFERED_LINES:
            self.dropped += 1
            return
        text = raw.decode("utf-8", "replace").replace("\r", "\n").rstrip("\n")
        self.lines.append((ts, text))

    def pump(self) -> bool:
        """Read what is there; True once the pipe is closed."""
        with self.lock:
            self._read()
            return self.eof

    def collect(self) -> list[tuple[int, str]]:
        """Every line written so far, including an unterminated last one."""
        with self.lock:
            self._read()
            if self._partial:
                self._add(self._partial_ts, self._partial)
                self._partial = b""
            lines, self.lines = self.lines, []
            if self.dropped:
                lines.append((_now_ms(), f"opsconsole sandbox: {self.dropped} log lines dropped"))
                self.dropped = 0
            return lines


class OutputPump:
    """One thread reading every environment's pipe, and noticing processes that exit."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._new: list[Environment] = []
        self._watched: set[Environment] = set()
        threading.Thread(target=self._run, name="lambda-output", daemon=True).start()

    def watch(self, env: Environment) -> None:
        with self._lock:
            self._new.append(env)
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        while True:
            try:
                self._loop()
            except Exception:  # noqa: BLE001 - this thread must outlive any one environment
                logger.exception("Lambda output pump failed; restarting it")
                time.sleep(0.1)

    def _loop(self) -> None:
        closing: set[Environment] = set()  # pipe closed, exit status not in yet
        last_poll = time.monotonic()
        while True:
            timeout = 0.01 if closing else 0.5
            for key, _ in self._selector.select(timeout):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    with self._lock:
                        new, self._new = self._new, []
                    for env in new:
                        self._watched.add(env)
                        self._selector.register(env.output.fd, selectors.EVENT_READ, env)
                    continue
                env = key.data
                if env.output.pump():
                    self._release(env)
                    closing.add(env)
            now = time.monotonic()
            if closing or now - last_poll >= 0.5:
                last_poll = now
                for env in list(self._watched):
                    code = env.proc.poll()
                    if code is None:
                        continue
                    self._watched.discard(env)
                    closing.discard(env)
                    env.output.pump()  # what the process wrote before it went
                    self._release(env)
                    env.on_exit(code)

    def _release(self, env: Environment) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(env.output.fd)
        env.output.close()


class Environment:
    """One runtime process, its Runtime API channel and its log stream."""

    def __init__(self, executor: Executor, spec: FunctionVersion, pool: Pool) -> None:
        self.executor = executor
        self.spec = spec
        self.pool = pool
        self.counted = True  # still counted in its pool and the warm total
        self.id = uuid.uuid4().hex
        self.stream = time.strftime("%Y/%m/%d/", time.gmtime()) + f"[{spec.version}]{self.id}"
        self.ready = threading.Event()
        self.failure: tuple[str, str | None, Any] | None = None
        self.dead = False
        self.exit_code: int | None = None
        self.invocations = 0
        self.last_used = time.monotonic()
        self.spawned_at = 0.0
        self.ready_at = 0.0
        self.notes: tuple[str, ...] = ()
        self.proc: subprocess.Popen | None = None
        self.channel = None
        self.output: Output | None = None
        self.scratch: Path | None = None
        self._lock = threading.Lock()
        self._pending: Future | None = None
        self._request_id: str | None = None

    # --- start and stop (invoke threads) ---------------------------------------------

    def start(self) -> None:
        try:
            launch = self.executor.launch_for(self.spec)
        except CannotRun as exc:
            self._fail_start("cannot_run", exc.error_type, exc.message)
            return
        self.notes = launch.notes
        self.channel = self.executor.api.open(self)
        self.scratch = self.executor.config.state_dir / "tmp" / self.id
        self.scratch.mkdir(parents=True, exist_ok=True)
        env = self._environment(launch)
        read_fd, write_fd = os.pipe()
        try:
            self.spawned_at = time.monotonic()
            self.proc = subprocess.Popen(
                launch.argv,
                cwd=launch.task_root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                close_fds=True,
            )
        except OSError as exc:
            os.close(read_fd)
            reason = (exc.strerror or str(exc)).lower()
            name = Path(launch.argv[0]).name
            message = f"fork/exec {name}: {reason}"
            self._fail_start("cannot_run", "Runtime.InvalidEntrypoint", message)
            return
        finally:
            os.close(write_fd)
        self.output = Output(read_fd)
        self.executor.pump.watch(self)

    def _fail_start(self, kind: str, error_type: str, message: str) -> None:
        self.failure = (kind, error_type, message)
        self.dead = True
        self.ready.set()

    def _environment(self, launch: Launch) -> dict[str, str]:
        spec, config = self.spec, self.executor.config
        task_root = str(launch.task_root)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LD_LIBRARY_PATH": f"{task_root}:{task_root}/lib",
            "HOME": str(self.scratch),
            "TMPDIR": str(self.scratch),
            # boto3 inside the function talks to this local AWS.
            "AWS_ENDPOINT_URL": config.endpoint,
            **launch.env,
            **{str(k): str(v) for k, v in spec.variables.items()},
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": self.stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "LAMBDA_TASK_ROOT": task_root,
            "LAMBDA_RUNTIME_DIR": str(launch.runtime_dir),
            "_HANDLER": launch.handler,
            "AWS_LAMBDA_RUNTIME_API": self.channel.address,
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "AWS_SESSION_TOKEN": "sandbox-session-token",
        }
        # Not defined for the OS-only runtimes (the provided family), as on AWS.
        if spec.runtime and not spec.runtime.startswith("provided"):
            env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{spec.runtime}"
        return env

    def stop(self) -> None:
        self.dead = True
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        if self.channel is not None:
            self.channel.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def max_memory_mb(self) -> int:
        if self.proc is None:
            return 0
        try:
            with open(f"/proc/{self.proc.pid}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"VmHWM:"):
                        return max(1, int(line.split()[1]) // 1024)
        except (OSError, ValueError, IndexError):
            pass
        return 0

    # --- Runtime API callbacks (loop thread) and process exit (pump thread) -------------

    def on_next(self) -> None:
        if not self.ready.is_set():
            self.ready_at = time.monotonic()
            self.ready.set()

    def on_init_error(self, error_type: str | None, body: bytes) -> None:
        with self._lock:
            if not self.ready.is_set():
                self.failure = ("init_error", error_type, body)
                self.ready_at = time.monotonic()
                self.ready.set()

    def on_result(self, request_id: str, kind: str, error_type: str | None, body: bytes) -> None:
        with self._lock:
            if self._request_id != request_id:
                return
            future, self._pending = self._pending, None
        if future is not None:
            future.set_result((kind, error_type, body))

    def on_exit(self, code: int) -> None:
        with self._lock:
            self.dead = True
            self.exit_code = code
            future, self._pending = self._pending, None
            if not self.ready.is_set():
                self.failure = ("exit", None, code)
                self.ready_at = time.monotonic()
                self.ready.set()
        if future is not None:
            future.set_result(("exit", None, code))
        if self.channel is not None:
            self.channel.close()
        self.executor.forget(self)

    # --- one invoke (the invoke thread that acquired this environment) -----------------

    def run(self, invocation: Invocation, outcome: RunOutcome) -> RunOutcome:
        outcome.stream, outcome.env_id = self.stream, self.id
        outcome.pid = self.proc.pid if self.proc else None
        cold = self.invocations == 0
        self.invocations += 1
        if not self.ready.wait(INIT_LIMIT_S):
            outcome.kind, outcome.error_type = "timeout", "Sandbox.Timedout"
            outcome.payload = _timeout_document(invocation.request_id, INIT_LIMIT_S)
            outcome.max_memory_mb = self.max_memory_mb()
            self.stop()
            outcome.pre_lines = self._collect()
            return outcome
        if cold:
            stamp = _now_ms()
            outcome.pre_lines = [(stamp, note) for note in self.notes]
            if self.ready_at and self.spawned_at:
                outcome.init_ms = (self.ready_at - self.spawned_at) * 1000
        if self.failure is None:
            future: Future = Future()
            with self._lock:
                if not self.dead:
                    self._request_id = invocation.request_id
                    self._pending = future
            if self._pending is future:
                if cold:
                    outcome.pre_lines += self._collect()
                started = time.monotonic()
                self.channel.deliver(invocation)
                try:
                    kind, error_type, body = future.result(timeout=self.spec.timeout_s)
                except FutureTimeout:
                    kind, error_type, body = "timeout", None, None
                outcome.duration_ms = (time.monotonic() - started) * 1000
            else:
                kind, error_type, body = "exit", None, self.exit_code
        else:
            kind, error_type, body = self.failure
            if cold:
                outcome.pre_lines += self._collect()
        outcome.max_memory_mb = self.max_memory_mb()
        _settle(outcome, invocation, kind, error_type, body, self.spec.timeout_s)
        if kind == "timeout":
            self.stop()
        outcome.lines = self._collect()
        return outcome

    def _collect(self) -> list[tuple[int, str]]:
        return self.output.collect() if self.output is not None else []


def _timeout_document(request_id: str, timeout_s: float) -> bytes:
    message = f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"
    return _json({"errorType": "Sandbox.Timedout", "errorMessage": message})


def _json(document: dict) -> bytes:

    return json.dumps(document).encode("utf-8")


def _exit_message(code: int | None) -> str:
    if code is None or code == 0:
        return "Runtime exited without providing a reason"
    if code < 0:
        return f"Runtime exited with error: signal: {_SIGNALS.get(-code, f'signal {-code}')}"
    return f"Runtime exited with error: exit status {code}"


def _error_document(body: bytes, error_type: str | None, request_id: str) -> tuple[bytes, str]:
    """The runtime's error as Invoke returns it (its JSON, or one built from the header)."""

    try:
        document = json.loads(body) if body else None
    except ValueError:
        document = None
    if isinstance(document, dict):
        if document.get("requestId") == "":
            document["requestId"] = request_id
            body = json.dumps(document).encode("utf-8")
        return body, str(document.get("errorType") or error_type or "Unhandled")
    text = body.decode("utf-8", "replace") if body else ""
    kind = error_type or "Unhandled"
    return _json({"errorMessage": text, "errorType": kind}), kind


def _settle(outcome, invocation, kind, error_type, body, timeout_s) -> None:
    request_id = invocation.request_id
    if kind == "response":
        outcome.kind, outcome.payload = "ok", body
    elif kind == "error":
        outcome.kind = "function_error"
        outcome.payload, outcome.error_type = _error_document(body, error_type, request_id)
    elif kind == "init_error":
        outcome.kind = "init_error"
        outcome.payload, outcome.error_type = _error_document(body, error_type, request_id)
    elif kind == "too_large":
        outcome.kind, outcome.error_type = "too_large", "Function.ResponseSizeTooLarge"
        outcome.payload = _json(
            {
                "errorMessage": "Response payload size exceeded maximum allowed payload size "
                "(6291556 bytes).",
                "errorType": "Function.ResponseSizeTooLarge",
            }
        )
    elif kind == "timeout":
        outcome.kind, outcome.error_type = "timeout", "Sandbox.Timedout"
        outcome.payload = _timeout_document(request_id, timeout_s)
    elif kind == "cannot_run":
        outcome.kind, outcome.error_type = "cannot_run", error_type
        outcome.payload = _json({"errorMessage": body, "errorType": error_type})
    else:  # the process exited
        outcome.kind, outcome.error_type = "exit", "Runtime.ExitError"
        message = f"RequestId: {request_id} Error: {_exit_message(body)}"
        outcome.payload = _json({"errorType": "Runtime.ExitError", "errorMessage": message})

"""The Lambda Runtime API (version 2018-06-01), served to each execution environment.

What a ``bootstrap`` or ``awslambdaric`` talks to at ``AWS_LAMBDA_RUNTIME_API``. Every
environment gets its own listening port on 127.0.0.1, so a request can only ever reach the
environment it came from; all ports are served by one asyncio loop on one thread (no thread
per environment or per connection). Shapes follow AWS's OpenAPI description of the API:

- ``GET /2018-06-01/runtime/invocation/next``: blocks until an invocation is delivered;
  200 with the event as body and the headers ``Lambda-Runtime-Aws-Request-Id``,
  ``Lambda-Runtime-Deadline-Ms``, ``Lambda-Runtime-Invoked-Function-Arn``,
  ``Lambda-Runtime-Trace-Id`` (and ``Lambda-Runtime-Client-Context`` /
  ``Lambda-Runtime-Cognito-Identity`` when the invoke had them);
- ``POST .../invocation/<id>/response`` and ``.../invocation/<id>/error`` (error type in
  ``Lambda-Runtime-Function-Error-Type``): 202 ``{"status": "OK"}``; 400 for a request id
  that is not the one in flight, 403 when it was already answered, 413 for a response over
  Lambda's 6 MB;
- ``POST /2018-06-01/runtime/init/error``: 202 before the first ``/next``, 403 after.

Errors are ``{"errorMessage", "errorType"}`` documents, as AWS's ErrorResponse.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)

PREFIX = "/2018-06-01/runtime/"
# Lambda's limit for a synchronous response (and request) payload.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100
_MAX_BODY = 64 * 1024 * 1024
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}
_REASONS.update({413: "Payload Too Large", 500: "Internal Server Error"})


@dataclass(frozen=True)
class Invocation:
    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str
    client_context: str | None = None
    cognito_identity: str | None = None

    def headers(self) -> list[tuple[str, str]]:
        headers = [
            ("Lambda-Runtime-Aws-Request-Id", self.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(self.deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", self.function_arn),
            ("Lambda-Runtime-Trace-Id", self.trace_id),
        ]
        if self.client_context:
            headers.append(("Lambda-Runtime-Client-Context", self.client_context))
        if self.cognito_identity:
            headers.append(("Lambda-Runtime-Cognito-Identity", self.cognito_identity))
        return headers


class RuntimeSink(Protocol):
    """The environment's side. Called on the loop thread: must not block."""

    def on_next(self) -> None: ...

    def on_result(self, request_id: str, kind: str, error_type: str | None, body: bytes) -> None:
        """``kind`` is "response", "error" or "too_large"."""

    def on_init_error(self, error_type: str | None, body: bytes) -> None: ...


class _HttpError(Exception):
    pass


class Channel:
    """One environment's Runtime API endpoint. ``deliver`` and ``close`` are thread-safe."""

    def __init__(self, api: RuntimeApi, sink: RuntimeSink) -> None:
        self._api = api
        self._sink = sink
        self._queue: deque[Invocation] = deque()
        self._waiter: asyncio.Future | None = None
        self._current: str | None = None  # request id delivered and not yet answered
        self._answered: set[str] = set()
        self._initialized = False
        self._closed = False
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def deliver(self, invocation: Invocation) -> None:
        self._api.loop.call_soon_threadsafe(self._deliver, invocation)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._api.loop.call_soon_threadsafe(self._shutdown)

    # --- loop thread ------------------------------------------------------------------

    def _deliver(self, invocation: Invocation) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(invocation)
            self._waiter = None
        else:
            self._queue.append(invocation)

    def _shutdown(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()

    async def _next(self) -> Invocation:
        self._initialized = True
        self._sink.on_next()
        if self._queue:
            invocation = self._queue.popleft()
        else:
            if self._waiter is not None and not self._waiter.done():
                self._waiter.cancel()  # a runtime that gave up on a /next and asked again
            self._waiter = self._api.loop.create_future()
            invocation = await self._waiter
        self._current = invocation.request_id
        return invocation

    async def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if not path.startswith(PREFIX):
            return _error(404, "InvalidURL", f"Unknown path {path}")
        route = path[len(PREFIX) :].split("?", 1)[0].rstrip("/").split("/")
        if method == "GET" and route == ["invocation", "next"]:
            invocation = await self._next()
            headers_out = [("Content-Type", "application/json"), *invocation.headers()]
            return 200, headers_out, invocation.payload
        if method == "POST" and route == ["init", "error"]:
            if self._initialized:
                return _error(403, "InvalidStateTransition", "Init is over: /next was called")
            self._initialized = True
            self._sink.on_init_error(headers.get("lambda-runtime-function-error-type"), body)
            return _accepted()
        if method == "POST" and len(route) == 3 and route[0] == "invocation":
            request_id, what = route[1], route[2]
            if what not in ("response", "error"):
                return _error(404, "InvalidURL", f"Unknown path {path}")
            if request_id in self._answered:
                return _error(403, "InvalidStateTransition", f"Invoke {request_id} was answered")
            if request_id != self._current:
                return _error(400, "InvalidRequestID", f"Invalid request ID: {request_id}")
            self._current = None
            self._answered.add(request_id)
            if len(self._answered) > 64:
                self._answered = {request_id}
            if what == "response" and len(body) > MAX_RESPONSE_BYTES:
                self._sink.on_result(request_id, "too_large", None, body[:0])
                return _error(
                    413,
                    "RequestEntityTooLarge",
                    f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                )
            error_type = headers.get("lambda-runtime-function-error-type")
            self._sink.on_result(request_id, what, error_type, body)
            return _accepted()
        return _error(404, "InvalidURL", f"Unknown path {method} {path}")

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while not self._closed:
                request = await _read_request(reader, writer)
                if request is None:
                    break
                method, path, headers, body, keep_alive = request
                status, out_headers, out_body = await self.handle(method, path, headers, body)
                head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
                head += [f"{name}: {value}" for name, value in out_headers]
                head.append(f"Content-Length: {len(out_body)}")
                if not keep_alive:
                    head.append("Connection: close")
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + out_body)
                await writer.drain()
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except _HttpError as exc:
            logger.info("runtime API: bad request on %s: %s", self.address, exc)
        finally:
            self._writers.discard(writer)
            writer.close()


def _accepted() -> tuple[int, list[tuple[str, str]], bytes]:
    return 202, [("Content-Type", "application/json")], b'{"status":"OK"}'


def _error(status: int, error_type: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
    return status, [("Content-Type", "application/json")], body


async def _read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
    line = await reader.readline()
    while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between requests
        line = await reader.readline()
    if not line:
        return None
    try:
        method, target, version = line.decode("latin-1").split()
    except ValueError as exc:
        raise _HttpError(f"request line {line[:80]!r}") from exc
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        length = int(headers.get("content-length") or 0)
        if length > _MAX_BODY:
            raise _HttpError(f"body of {length} bytes")
        body = await reader.readexactly(length) if length else b""
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return method, target, headers, body, keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readline()
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        total += size
        if total > _MAX_BODY:
            raise _HttpError("chunked body too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


class RuntimeApi:
    """The event loop thread that serves every environment's channel."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="lambda-runtime-api", daemon=True
        )
        self._thread.start()

    def open(self, sink: RuntimeSink) -> Channel:
        """A new channel listening on a free port of 127.0.0.1 (blocks until it listens)."""
        channel = Channel(self, sink)

        async def start() -> None:
            channel._server = await asyncio.start_server(
                channel.serve, "127.0.0.1", 0, limit=1 << 20, backlog=16
            )
            channel.port = channel._server.sockets[0].getsockname()[1]

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(timeout=10)
        return channel

"""Tenant apps for tests on in-process moto, which never runs a function's code.

moto's invoke echoes the event; an echo of a payload-2.0 event is JSON without a
statusCode, which API Gateway's rule reads as 200, so every health check would pass
without any app having answered. Here each health invoke is handed instead to a real
app (a small ASGI app behind Mangum, the adapter FastAPI apps use on Lambda), in
process: the event the console built must route through Mangum to ``GET /healthz``, and
Mangum's answer is what the console judges. A tenant's app can be broken on purpose
(``break_app``), and every invoke is kept (``calls``) with its qualifier and event.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from mangum import Mangum

from opsconsole.aws import lambda_


def call_mangum(handler: Mangum, event: dict, context: Any) -> dict:
    """Run a Mangum handler in a thread with an event loop of its own.

    Mangum drives the app with the thread's event loop; the browser tests' Playwright (sync
    API, session-scoped) keeps a loop running in the main thread for the rest of the
    session, where Mangum would fail with "This event loop is already running".
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            outcome["answer"] = handler(event, context)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            outcome["error"] = exc
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="mangum")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["answer"]


@dataclass
class Call:
    function: str
    qualifier: str
    event: dict[str, Any]
    scope: dict[str, Any] | None = None  # what the app saw (None: Mangum refused the event)


@dataclass
class HealthApps:
    calls: list[Call] = field(default_factory=list)
    # function name -> (status, body) its app answers on every route
    broken: dict[str, tuple[int, str]] = field(default_factory=dict)
    # The app's health routes (a team's own: /api/health); any other path is a 404.
    health_paths: set[str] = field(default_factory=lambda: {"/healthz"})
    _real: Any = None

    def start(self, monkeypatch) -> None:
        self._real = lambda_.invoke_within
        monkeypatch.setattr(lambda_, "invoke_within", self.invoke_within)

    def stop(self, monkeypatch) -> None:
        """Back to the real Invoke (a test that stubs Lambda's answers itself)."""
        monkeypatch.setattr(lambda_, "invoke_within", self._real)

    def break_app(self, function: str, status: int = 500, body: str = '{"error": "db down"}'):
        self.broken[function] = (status, body)

    def invoke_within(
        self, *, name: str, qualifier: str, payload: dict, timeout_s: float, region=None
    ) -> tuple[int, str, str]:
        call = Call(function=name, qualifier=qualifier, event=payload)
        self.calls.append(call)
        broken = self.broken.get(name)

        async def app(scope, receive, send):
            call.scope = scope
            if broken:
                status, body = broken
            elif scope["method"] == "GET" and scope["path"] in self.health_paths:
                status, body = 200, '{"status": "ok"}'
            else:
                status, body = 404, '{"error": "no such route"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body.encode()})

        try:
            answer = call_mangum(Mangum(app, lifespan="off"), payload, _Context(name, qualifier))
        except Exception as exc:  # noqa: BLE001 - what Lambda reports for an unhandled error
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            return 200, json.dumps(error), "Unhandled"
        return 200, json.dumps(answer), ""


class _Context:
    def __init__(self, function: str, qualifier: str):
        self.function_name = function
        self.function_version = qualifier
        self.aws_request_id = "test"

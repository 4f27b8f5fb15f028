"""The Runtime API as a runtime sees it: real HTTP on 127.0.0.1, one channel per environment."""

from __future__ import annotations

import http.client
import json
import socket
import threading

import pytest

from opsconsole.sandbox.localaws.runtime_api import MAX_RESPONSE_BYTES, Invocation, RuntimeApi

NEXT = "/2018-06-01/runtime/invocation/next"


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_next(self) -> None:
        self.events.append(("next",))

    def on_result(self, request_id, kind, error_type, body) -> None:
        self.events.append((kind, request_id, error_type, body))

    def on_init_error(self, error_type, body) -> None:
        self.events.append(("init_error", error_type, body))


@pytest.fixture(scope="module")
def api() -> RuntimeApi:
    return RuntimeApi()


def invocation(request_id: str = "req-1", **extra) -> Invocation:
    return Invocation(
        request_id=request_id,
        payload=b'{"hello": "world"}',
        deadline_ms=1_900_000_000_000,
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:f:live",
        trace_id="Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0",
        **extra,
    )


def next_in_background(address: str) -> tuple[threading.Thread, dict]:
    got: dict = {}

    def call() -> None:
        conn = http.client.HTTPConnection(address, timeout=10)
        conn.request("GET", NEXT)
        response = conn.getresponse()
        got.update(status=response.status, headers=dict(response.getheaders()))
        got["body"] = response.read()

    thread = threading.Thread(target=call)
    thread.start()
    return thread, got


def post(address: str, path: str, body: bytes, headers: dict | None = None):
    conn = http.client.HTTPConnection(address, timeout=10)
    conn.request("POST", f"/2018-06-01/runtime/{path}", body, headers or {})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def test_next_blocks_until_an_invocation_then_serves_it_with_its_headers(api):
    sink = Sink()
    channel = api.open(sink)
    thread, got = next_in_background(channel.address)
    thread.join(0.3)
    assert thread.is_alive()  # blocking: nothing delivered yet
    channel.deliver(invocation(client_context='{"custom": {"a": 1}}'))
    thread.join(5)
    assert got["status"] == 200
    assert got["body"] == b'{"hello": "world"}'
    headers = got["headers"]
    assert headers["Lambda-Runtime-Aws-Request-Id"] == "req-1"
    assert headers["Lambda-Runtime-Deadline-Ms"] == "1900000000000"
    assert headers["Lambda-Runtime-Invoked-Function-Arn"].endswith(":function:f:live")
    assert headers["Lambda-Runtime-Trace-Id"].startswith("Root=1-")
    assert headers["Lambda-Runtime-Client-Context"] == '{"custom": {"a": 1}}'
    assert "Lambda-Runtime-Cognito-Identity" not in headers
    assert sink.events == [("next",)]
    assert post(channel.address, "invocation/req-1/response", b'"done"') == (202, {"status": "OK"})
    assert sink.events[-1] == ("response", "req-1", None, b'"done"')
    channel.close()


def test_answers_for_the_wrong_invocation_are_refused(api):
    sink = Sink()
    channel = api.open(sink)
    thread, _ = next_in_background(channel.address)
    channel.deliver(invocation("req-2"))
    thread.join(5)
    status, body = post(channel.address, "invocation/other/response", b"{}")
    assert status == 400 and body["errorType"] == "InvalidRequestID"
    error = b'{"errorMessage": "x", "errorType": "KeyError", "stackTrace": []}'
    headers = {"Lambda-Runtime-Function-Error-Type": "Unhandled"}
    assert post(channel.address, "invocation/req-2/error", error, headers)[0] == 202
    assert sink.events[-1] == ("error", "req-2", "Unhandled", error)
    status, body = post(channel.address, "invocation/req-2/response", b"{}")
    assert status == 403 and body["errorType"] == "InvalidStateTransition"
    channel.close()


def test_init_error_is_accepted_only_before_the_first_next(api):
    sink = Sink()
    channel = api.open(sink)
    body = b'{"errorMessage": "no config", "errorType": "Runtime.ConfigError"}'
    headers = {"Lambda-Runtime-Function-Error-Type": "Runtime.ConfigError"}
    assert post(channel.address, "init/error", body, headers) == (202, {"status": "OK"})
    assert sink.events == [("init_error", "Runtime.ConfigError", body)]
    status, answer = post(channel.address, "init/error", body, headers)
    assert status == 403 and answer["errorType"] == "InvalidStateTransition"
    channel.close()


def test_response_over_six_megabytes_is_413(api):
    sink = Sink()
    channel = api.open(sink)
    thread, _ = next_in_background(channel.address)
    channel.deliver(invocation("req-3"))
    thread.join(5)
    status, body = post(
        channel.address, "invocation/req-3/response", b"x" * (MAX_RESPONSE_BYTES + 1)
    )
    assert status == 413 and body["errorType"] == "RequestEntityTooLarge"
    assert sink.events[-1][:2] == ("too_large", "req-3")
    channel.close()


def test_keep_alive_chunked_bodies_and_expect_continue(api):
    """What curl and the C++ runtime client send: one connection, 100-continue, chunks."""
    sink = Sink()
    channel = api.open(sink)
    channel.deliver(invocation("req-4"))
    with socket.create_connection(("127.0.0.1", channel.port), timeout=5) as sock:
        sock.sendall(f"GET {NEXT} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b'{"hello": "world"}')
        sock.sendall(
            b"POST /2018-06-01/runtime/invocation/req-4/response HTTP/1.1\r\nHost: x\r\n"
            b"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b'5\r\n{"ok"\r\n6\r\n: true\r\n1\r\n}\r\n0\r\n\r\n')
        second = sock.recv(65536)
        assert second.startswith(b"HTTP/1.1 202 Accepted\r\n")
        assert second.endswith(b'{"status":"OK"}')
    assert sink.events[-1] == ("response", "req-4", None, b'{"ok": true}')
    channel.close()


def test_each_environment_has_its_own_port(api):
    one, two = api.open(Sink()), api.open(Sink())
    assert one.port != two.port
    one.close()
    two.close()

"""The drills' TCP proxy really cuts: a client waiting for an answer when the cut comes
sees its connection end, as it would when its server restarts (an echo server, no
database)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from tests.tcp_proxy import TcpProxy


@pytest.fixture
def silent_server():
    """Accepts and reads, never answers: a server busy with a long statement. Its
    ``asked`` event says a request came through the proxy."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    asked = threading.Event()

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            if conn.recv(100):
                asked.set()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname(), asked
    server.close()
    for conn in held:
        conn.close()


def test_a_client_waiting_for_its_answer_sees_the_cut(silent_server):
    address, asked = silent_server
    proxy = TcpProxy(*address).start()
    client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    client.sendall(b"SELECT pg_sleep(600)")
    try:
        # Cut once the request is through and the proxy's threads are back in recv()
        # (the moment of the old bug: close() alone did not end a connection then).
        assert asked.wait(5)
        time.sleep(0.3)
        proxy.cut()
        # Reset or closed, either is the end; a timeout is a connection the cut missed.
        with contextlib.suppress(ConnectionResetError):
            assert client.recv(100) == b""
    finally:
        client.close()


def test_after_a_cut_new_connections_are_refused_until_it_starts_again(silent_server):
    proxy = TcpProxy(*silent_server[0]).start()
    proxy.cut()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    proxy.start()
    socket.create_connection(("127.0.0.1", proxy.port), timeout=5).close()
    proxy.cut()

"""A TCP forwarder a test can cut: what a process behind it sees when its server becomes
unreachable (new connections refused, open ones reset) and then comes back."""

from __future__ import annotations

import contextlib
import socket
import threading

from opsconsole.sandbox import services

_RESET = b"\x01\0\0\0\0\0\0\0"  # SO_LINGER on, 0 s: close() sends RST, not FIN


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = services.free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        with self._lock:
            listener, self._listener = self._listener, None
            doomed, self._open = self._open, set()
        if listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone would leave the
            # port bound until it returned.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                # close() alone does not end a connection while a pipe thread is blocked
                # in recv() on it (Linux releases the socket only once that call
                # returns): the peer saw nothing, and a client waiting for its answer
                # waited forever. shutdown() wakes the recv; the peer sees the end.
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # the timeout was for connecting; idle is fine
            with self._lock:
                # Accepted just before a cut: it would outlive it, unseen by cut().
                alive = self._listener is listener
                if alive:
                    self._open.update((client, upstream))
            if not alive:
                for sock in (client, upstream):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                    sock.close()
                return
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    # Wakes the other direction's thread, blocked in recv() (see cut).
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._open.difference_update((source, sink))

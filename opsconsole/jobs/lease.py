"""A running step keeps its job's lease alive, and learns when it has lost it.

Leases are renewed at every step boundary, but one step can outlast a lease by far (a
migration statement, an advisory-lock wait, a pg_dump, an image push). Without a
heartbeat the sweep would hand the job to a second worker while the first is still
inside the step. ``Heartbeat`` renews the lease from a thread every third of its length
while the step works; when a renewal finds the lease gone (the sweep re-queued the job,
a user's cancel took it, another worker owns it) it sets ``lost`` and calls what the step
registered with ``on_lost`` (a migration cancels its statement), so the step stops
rather than carrying on blindly. The runner then writes nothing for that run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from datetime import timedelta

from django.db import connections
from django.utils import timezone

logger = logging.getLogger(__name__)

# The heartbeat of the step running in this thread, for code deep inside a step (the
# migration runner) that must stop its own work when the lease goes.
_current: ContextVar[Heartbeat | None] = ContextVar("job_lease", default=None)


def current() -> Heartbeat | None:
    """The lease of the job step running in this thread, if any."""
    return _current.get()


_RENEW_SQL = (
    "UPDATE jobs_job SET lease_expires_at = %s "
    "WHERE id = %s AND status = 'running' AND lease_owner = %s"
)


class Heartbeat:
    def __init__(self, *, job_id: int, owner: str, lease_seconds: float) -> None:
        self.job_id = job_id
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.lost = threading.Event()
        self.renewals = 0
        self._stop = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._thread: threading.Thread | None = None

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the heartbeat's thread) once the lease is lost."""
        self._callbacks.append(callback)
        if self.lost.is_set():
            callback()

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(
            target=self._run, name=f"lease-heartbeat-{self.job_id}", daemon=True
        )
        self._thread.start()
        self._token = _current.set(self)
        return self

    def __exit__(self, *_exc) -> None:
        _current.reset(self._token)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        interval = max(0.05, self.lease_seconds / 3)
        try:
            while not self._stop.wait(interval):
                if not self._renew():
                    self._lose()
                    return
        finally:
            # The thread's own connection (Django opens one per thread).
            connections.close_all()

    def _renew(self) -> bool:
        expires = timezone.now() + timedelta(seconds=self.lease_seconds)
        try:
            with connections["default"].cursor() as cur:
                cur.execute(_RENEW_SQL, [expires, self.job_id, self.owner])
                renewed = cur.rowcount == 1
        except Exception:  # noqa: BLE001 - a database blip: the lease still has 2/3 left
            logger.warning("Lease renewal of job %s failed; trying again", self.job_id)
            # Django keeps a broken connection until someone closes it, and nothing else
            # does in this thread: every later renewal would fail on the dead socket
            # while the step works on, its lease would run out, and the sweep would hand
            # the job to a second worker. Closed, the next renewal connects anew.
            with contextlib.suppress(Exception):
                connections["default"].close()
            return True
        if renewed:
            self.renewals += 1
        return renewed

    def _lose(self) -> None:
        logger.warning("Job %s: lease lost while a step was running; stopping it", self.job_id)
        self.lost.set()
        for callback in self._callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - stopping is best effort; the run writes nothing
                logger.exception("Job %s: a lease-lost callback failed", self.job_id)

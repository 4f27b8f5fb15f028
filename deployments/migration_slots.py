"""At most N tenant migrations at once per database server, across every worker.

The migration runner (``deployments.migration_runner``) holds a slot while it migrates one
tenant database; this module is the semaphore and the console-database connection it is
built on. Also the settings both read, with their defaults.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from django.conf import settings

APPLICATION_NAME = "opsconsole-migrate"

# Defaults of the settings read below (settings.py may override each from the environment).
DEFAULTS: dict[str, int | str] = {
    "TENANT_MIGRATIONS_PER_SERVER": 4,
    "TENANT_MIGRATION_SLOT_WAIT_S": 300,
    "TENANT_MIGRATION_CONNECT_TIMEOUT_S": 5,
    "TENANT_MIGRATION_RESUME_WAIT_S": 30,
    "TENANT_MIGRATION_LOCK_WAIT_S": 120,
    "TENANT_MIGRATION_LOCK_TIMEOUT_MS": 5_000,
    "TENANT_MIGRATION_STATEMENT_TIMEOUT_MS": 300_000,
    "TENANT_DB_SSLMODE": "prefer",
    "TENANT_DB_SSLROOTCERT": "",  # empty: libpq's default (settings.py: the RDS CA bundle)
}


def setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


def advisory_key(text: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock, derived from a name."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


# --- the semaphore per database server ----------------------------------------------------


class SlotUnavailable(Exception):
    """No slot within the wait, or the console database could not be reached."""


class ServerSlots:
    """At most ``limit`` holders per server key, across processes and machines.

    Each slot is a session-level PostgreSQL advisory lock on the console's own database,
    taken with pg_try_advisory_lock on a connection opened for that purpose. Why this and
    not Redis: the lock belongs to the connection, so PostgreSQL frees the slot as soon as
    its holder is gone, however the worker died (killed Celery child, OOM, lost machine once
    TCP keepalive notices). A Redis semaphore needs a TTL longer than the slowest migration
    plus renewal while it runs; get either wrong and the limit breaks or a dead worker's
    slot stays taken. Every worker already reaches the console database; the cost is one
    idle console connection per running migration. That connection must be direct or
    session-pooled (a transaction-pooling PgBouncer would hand the lock to someone else),
    which is why it is not Django's connection.
    """

    def __init__(
        self,
        *,
        limit: int | None = None,
        wait_s: float | None = None,
        poll_s: float = 0.2,
        console_kwargs: dict[str, Any] | None = None,
    ):
        self._limit = limit
        self._wait_s = wait_s
        self.poll_s = poll_s
        self._console_kwargs = console_kwargs

    @property
    def limit(self) -> int:
        return int(
            self._limit if self._limit is not None else setting("TENANT_MIGRATIONS_PER_SERVER")
        )

    @staticmethod
    def slot_key(server_key: str, slot: int) -> int:
        return advisory_key(f"opsconsole:migration-slot:{server_key}:{slot}")

    @contextmanager
    def hold(
        self, server_key: str, *, on_wait: Callable[[], None] | None = None
    ) -> Iterator[int | None]:
        """Wait for a free slot on the server, hold it for the block. Yields its number."""
        limit = self.limit
        if limit <= 0:  # no limit configured
            yield None
            return
        wait_s = float(
            self._wait_s if self._wait_s is not None else setting("TENANT_MIGRATION_SLOT_WAIT_S")
        )
        kwargs = self._console_kwargs or console_connection_kwargs()
        try:
            conn = psycopg.connect(
                **kwargs, autocommit=True, application_name=f"{APPLICATION_NAME}-slot"
            )
        except psycopg.Error as exc:
            raise SlotUnavailable(f"cannot reach the console database for slots: {exc}") from exc
        with conn:
            slot = self._acquire(conn, server_key, limit, wait_s, on_wait)
            try:
                yield slot
            finally:
                # Closing the connection frees the lock anyway; unlocking is a courtesy.
                with suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", [self.slot_key(server_key, slot)])

    def _acquire(
        self,
        conn: psycopg.Connection,
        server_key: str,
        limit: int,
        wait_s: float,
        on_wait: Callable[[], None] | None,
    ) -> int:
        deadline = time.monotonic() + wait_s
        keys = [self.slot_key(server_key, slot) for slot in range(limit)]
        told = False
        try:
            while True:
                # Start at a random slot so waiters do not all hammer slot 0 first.
                first = random.randrange(limit)
                for slot in [*range(first, limit), *range(first)]:
                    row = conn.execute("SELECT pg_try_advisory_lock(%s)", [keys[slot]]).fetchone()
                    if row and row[0]:
                        return slot
                if not told and on_wait:
                    on_wait()
                    told = True
                if time.monotonic() >= deadline:
                    raise SlotUnavailable(
                        f"all {limit} migration slots on {server_key} stayed busy for "
                        f"{wait_s:g} s; try again later"
                    )
                time.sleep(self.poll_s * (0.5 + random.random()))
        except psycopg.Error as exc:
            raise SlotUnavailable(f"console database error while taking a slot: {exc}") from exc


_DJANGO_ONLY_OPTIONS = {
    "isolation_level",
    "server_side_binding",
    "assume_role",
    "pool",
    "cursor_factory",
    "context",
    "prepare_threshold",
}


def console_connection_kwargs() -> dict[str, Any]:
    """psycopg.connect() keywords for the console's database (as Django is configured)."""
    from django.db import connections

    conf = connections["default"].settings_dict
    kwargs: dict[str, Any] = {
        "dbname": conf.get("NAME"),
        "user": conf.get("USER"),
        "password": conf.get("PASSWORD"),
        "host": conf.get("HOST"),
        "port": conf.get("PORT"),
    }
    kwargs = {key: value for key, value in kwargs.items() if value not in (None, "")}
    for key, value in (conf.get("OPTIONS") or {}).items():
        if key not in _DJANGO_ONLY_OPTIONS:
            kwargs[key] = value
    return kwargs

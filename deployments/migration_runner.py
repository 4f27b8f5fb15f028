"""Apply a release's SQL migrations to one tenant database.

The runner takes plain values (where the database is, which migrations) and returns a
result; callers (onboarding, a deployment step, a Celery task) record it. One run:

1. read the credentials from the tenant's secret (kept in memory only, never logged);
2. wait for a migration slot on the database server (at most N runs per shared instance);
3. connect, retrying while an Aurora Serverless v2 cluster resumes ("database is resuming");
4. take a session advisory lock in the tenant database, so two runs never overlap;
5. set lock_timeout and statement_timeout;
6. create the history table if missing, refuse to go on if an applied file changed;
7. apply each pending migration in its own transaction with its history row, or statement
   by statement in autocommit for ``-- opsconsole:no-transaction`` files; stop at the
   first failure with PostgreSQL's message, the statement and the position.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg

from deployments.migration_files import (
    MigrationSpec,
    Statement,
    UnterminatedSql,
    line_and_column,
    split_statements,
)
from deployments.migration_slots import (
    APPLICATION_NAME,
    ServerSlots,
    SlotUnavailable,
    advisory_key,
    setting,
)
from opsconsole.aws.errors import AwsError
from opsconsole.aws.secrets import get_secret_json
from opsconsole.jobs import lease as job_lease

logger = logging.getLogger(__name__)

StatusCallback = Callable[[str], None]

HISTORY_TABLE = "opsconsole_schema_history"

# Advisory locks are scoped to one database, so one fixed key serves every tenant database,
# including many tenant databases on one shared instance.
MIGRATION_LOCK_KEY = advisory_key("opsconsole:tenant-migrations")


# --- inputs and results ------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseTarget:
    """Where one tenant database is, and which server's migration slots it uses.

    Either ``secret_id`` (a Secrets Manager secret holding host, port, dbname, username,
    password: what tenants use) or the connection values themselves (tests, the bench).
    ``server_key`` names the database server (RDS instance or cluster identifier): runs
    with the same key share ``TENANT_MIGRATIONS_PER_SERVER`` slots. ``proxy_host`` and
    ``proxy_port``, when set, replace the secret's host and port (an RDS Proxy endpoint the
    worker can reach: a host name, never ``host:port``).
    """

    server_key: str
    secret_id: str = ""
    region: str | None = None
    proxy_host: str = ""
    proxy_port: int = 5432
    host: str = ""
    port: int = 5432
    dbname: str = ""
    user: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class _Credentials:
    host: str
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)


class FailureKind(StrEnum):
    # The tenant's secret could not be read or lacks a value.
    SECRET = "secret"  # noqa: S105 (a failure kind, not a password)
    SLOT = "slot"  # no migration slot on the server in time, or the console DB is down
    CONNECT = "connect"  # the tenant database could not be reached
    LOCK = "lock"  # another run kept the database's migration lock too long
    CHECKSUM = "checksum"  # an applied migration's text changed since
    SQL = "sql"  # a migration failed; it was rolled back
    DATABASE = "database"  # anything else PostgreSQL refused (history table, lost link)


@dataclass(frozen=True)
class MigrationError:
    """Why a run stopped. ``retryable``: running again unchanged may succeed."""

    kind: FailureKind
    message: str
    retryable: bool
    migration: str = ""  # the file name, when one migration is to blame
    sqlstate: str = ""
    statement: str = ""  # the failing statement (truncated), for SQL failures
    position: int | None = None  # 1-based character offset in the file, when known
    line: int | None = None  # line of the error (or of the statement) in the file
    column: int | None = None
    context: str = ""  # PostgreSQL's CONTEXT (e.g. inside a function or DO block)
    detail: str = ""
    hint: str = ""

    def __str__(self) -> str:
        where = self.migration
        if self.line is not None:
            where += f", line {self.line}" + (f", column {self.column}" if self.column else "")
        head = f"{where}: {self.message}" if where else self.message
        if self.sqlstate:
            head += f" (SQLSTATE {self.sqlstate})"
        parts = [head]
        for label, value in (
            ("detail", self.detail),
            ("hint", self.hint),
            ("context", self.context),
            ("statement", self.statement),
        ):
            if value:
                parts.append(f"{label}: {value}")
        return "\n".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    duration_ms: int


@dataclass(frozen=True)
class HistoryRow:
    version: int
    name: str
    checksum: str
    applied_at: datetime
    duration_ms: int
    release: str


@dataclass
class MigrateResult:
    applied: list[AppliedMigration] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already applied before this run
    error: MigrationError | None = None
    current_version: int | None = None  # highest version in the database after the run

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class PlanResult:
    applied: list[HistoryRow] = field(default_factory=list)
    pending: list[MigrationSpec] = field(default_factory=list)
    error: MigrationError | None = None  # unreachable, or an applied file changed

    @property
    def current_version(self) -> int | None:
        return max((row.version for row in self.applied), default=None)


class _Abort(Exception):
    def __init__(self, error: MigrationError):
        super().__init__(error.message)
        self.error = error


# --- connecting ---------------------------------------------------------------------------

# Errors seen while a paused Aurora Serverless v2 cluster wakes up (or a server restarts):
# worth waiting for. Anything else (bad password, no such database) fails at once.
_RESUMING_MARKERS = (
    "connection refused",
    "the database system is starting up",
    "the database system is not yet accepting connections",
    "timeout expired",
    "timed out",
    "server closed the connection unexpectedly",
)


def _resuming(exc: psycopg.OperationalError) -> bool:
    if exc.sqlstate == "57P03":  # cannot_connect_now
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _RESUMING_MARKERS)


def _connect(**kwargs: Any) -> psycopg.Connection:
    """The one place that opens a tenant connection (tests replace it)."""
    return psycopg.connect(**kwargs)


def _credentials(target: DatabaseTarget) -> _Credentials:
    if target.secret_id:
        try:
            secret = get_secret_json(secret_id=target.secret_id, region=target.region)
        except AwsError as exc:
            raise _Abort(
                MigrationError(
                    kind=FailureKind.SECRET,
                    message=f"cannot read the database secret {target.secret_id}: {exc}",
                    retryable=not exc.permanent,
                )
            ) from exc
        missing = [k for k in ("host", "dbname", "username", "password") if not secret.get(k)]
        if missing:
            raise _Abort(
                MigrationError(
                    kind=FailureKind.SECRET,
                    message=f"the database secret {target.secret_id} lacks {', '.join(missing)}",
                    retryable=False,
                )
            )
        host = target.proxy_host or str(secret["host"])
        port = target.proxy_port if target.proxy_host else int(secret.get("port") or 5432)
        dbname, user, password = (
            str(secret["dbname"]),
            str(secret["username"]),
            str(secret["password"]),
        )
    else:
        host = target.proxy_host or target.host
        port = target.proxy_port if target.proxy_host else target.port
        dbname, user, password = target.dbname, target.user, target.password
    return _Credentials(host=host, port=port, dbname=dbname, user=user, password=password)


def _open(creds: _Credentials, report: StatusCallback) -> psycopg.Connection:
    """Connect, retrying with backoff while the database is resuming (bounded)."""
    connect_timeout = max(2, int(setting("TENANT_MIGRATION_CONNECT_TIMEOUT_S")))
    budget = float(setting("TENANT_MIGRATION_RESUME_WAIT_S"))
    kwargs: dict[str, Any] = {
        "host": creds.host,
        "port": creds.port,
        "dbname": creds.dbname,
        "user": creds.user,
        "connect_timeout": connect_timeout,
        "application_name": APPLICATION_NAME,
        "sslmode": setting("TENANT_DB_SSLMODE"),
        "sslrootcert": setting("TENANT_DB_SSLROOTCERT"),
        "autocommit": True,
        # No server-side prepared statements: safe behind RDS Proxy and PgBouncer.
        "prepare_threshold": None,
    }
    if creds.password:
        kwargs["password"] = creds.password
    deadline = time.monotonic() + budget
    delay = 0.5
    told = False
    while True:
        try:
            return _connect(**kwargs)
        except psycopg.OperationalError as exc:
            if not _resuming(exc):
                raise _Abort(
                    MigrationError(
                        kind=FailureKind.CONNECT,
                        message=f"cannot connect to database {creds.dbname}: {_one_line(exc)}",
                        retryable=exc.sqlstate == "53300",  # too many connections
                    )
                ) from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Abort(
                    MigrationError(
                        kind=FailureKind.CONNECT,
                        message=(
                            f"database {creds.dbname} did not accept connections within "
                            f"{budget:g} s (last error: {_one_line(exc)}); the worker must "
                            "reach it (same VPC, or the tenant's RDS Proxy endpoint)"
                        ),
                        retryable=True,
                    )
                ) from exc
            if not told:
                report("database is resuming")
                told = True
            time.sleep(min(remaining, delay * random.uniform(0.8, 1.2)))
            delay = min(delay * 2, 5.0)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# --- the tenant database ------------------------------------------------------------------


def _take_migration_lock(conn: psycopg.Connection, dbname: str, report: StatusCallback) -> None:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATION_LOCK_KEY]).fetchone()
    if row and row[0]:
        return
    report("waiting for another migration run on this database")
    wait_s = int(setting("TENANT_MIGRATION_LOCK_WAIT_S"))
    # pg_advisory_lock waits are bounded by lock_timeout; PostgreSQL wakes us as soon as
    # the other run releases the lock (or its connection ends).
    conn.execute("SELECT set_config('lock_timeout', %s, false)", [f"{wait_s * 1000}"])
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
        raise _Abort(
            MigrationError(
                kind=FailureKind.LOCK,
                message=(
                    f"another migration run kept database {dbname} locked for more than "
                    f"{wait_s} s; try again when it has finished"
                ),
                retryable=True,
            )
        ) from exc


def _set_timeouts(conn: psycopg.Connection) -> None:
    # lock_timeout keeps DDL from queueing behind a long transaction while every later
    # query of the tenant's application queues behind the DDL.
    conn.execute(
        "SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
        [
            str(int(setting("TENANT_MIGRATION_LOCK_TIMEOUT_MS"))),
            str(int(setting("TENANT_MIGRATION_STATEMENT_TIMEOUT_MS"))),
        ],
    )


_CREATE_HISTORY = f"""
CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    duration_ms integer NOT NULL,
    release text NOT NULL DEFAULT ''
)
"""


def _read_history(conn: psycopg.Connection) -> list[HistoryRow]:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [HISTORY_TABLE]).fetchone()
    if not row or not row[0]:
        return []
    rows = conn.execute(
        f"SELECT version, name, checksum, applied_at, duration_ms, release "
        f"FROM {HISTORY_TABLE} ORDER BY version"
    ).fetchall()
    return [HistoryRow(*r) for r in rows]


def _changed(
    history: Sequence[HistoryRow], specs: Sequence[MigrationSpec]
) -> MigrationError | None:
    by_version = {row.version: row for row in history}
    changed = [
        (spec, by_version[spec.version])
        for spec in specs
        if spec.version in by_version and by_version[spec.version].checksum != spec.checksum
    ]
    if not changed:
        return None
    described = "; ".join(
        f"{spec.name} (applied as {row.name} by release {row.release or '?'} with sha256 "
        f"{row.checksum[:12]}..., now {spec.checksum[:12]}...)"
        for spec, row in changed
    )
    return MigrationError(
        kind=FailureKind.CHECKSUM,
        migration=changed[0][0].name,
        message=(
            f"refusing to run: applied migration changed since it ran: {described}. "
            "An applied migration is never edited; add a new one instead"
        ),
        retryable=False,
    )


def _statements(spec: MigrationSpec) -> list[Statement]:
    try:
        return split_statements(spec.sql)
    except UnterminatedSql as exc:
        line, column = line_and_column(spec.sql, exc.offset)
        raise _Abort(
            MigrationError(
                kind=FailureKind.SQL,
                migration=spec.name,
                message=f"{exc.what} is never closed",
                line=line,
                column=column,
                retryable=False,
            )
        ) from exc


_RETRYABLE_SQLSTATES = {"55P03", "57014", "40001", "40P01"}  # lock/statement timeout, conflicts


def _sql_failure(
    spec: MigrationSpec, statement: Statement | None, exc: psycopg.Error, note: str = ""
) -> MigrationError:
    diag = exc.diag
    message = diag.message_primary or _one_line(exc)
    sqlstate = diag.sqlstate or exc.sqlstate or ""
    if sqlstate == "55P03":
        message += " (lock_timeout: another session holds a lock this migration needs)"
    elif sqlstate == "57014":
        message += " (statement_timeout or cancelled)"
    if note:
        message += f"; {note}"
    position = line = column = None
    text = ""
    if statement is not None:
        offset = statement.start
        if diag.statement_position:
            offset += int(diag.statement_position) - 1
            position = offset + 1
        line, column = line_and_column(spec.sql, offset)
        text = statement.sql if len(statement.sql) <= 2000 else statement.sql[:2000] + " ..."
    return MigrationError(
        kind=FailureKind.SQL,
        migration=spec.name,
        message=message,
        retryable=sqlstate in _RETRYABLE_SQLSTATES or (not sqlstate and not exc.diag.severity),
        sqlstate=sqlstate,
        statement=text,
        position=position,
        line=line,
        column=column,
        context=diag.context or "",
        detail=diag.message_detail or "",
        hint=diag.message_hint or "",
    )


_INSERT_HISTORY = (
    f"INSERT INTO {HISTORY_TABLE} (version, name, checksum, duration_ms, release) "
    "VALUES (%s, %s, %s, %s, %s)"
)


def _apply(conn: psycopg.Connection, spec: MigrationSpec, release: str) -> AppliedMigration:
    statements = _statements(spec)
    started = time.monotonic()
    current: Statement | None = None
    if not spec.no_transaction:
        try:
            with conn.transaction():
                for current in statements:
                    conn.execute(current.sql)
                current = None
                duration_ms = int((time.monotonic() - started) * 1000)
                conn.execute(
                    _INSERT_HISTORY, [spec.version, spec.name, spec.checksum, duration_ms, release]
                )
        except psycopg.Error as exc:
            raise _Abort(_sql_failure(spec, current, exc, "the migration was rolled back")) from exc
    else:
        # Outside a transaction (CREATE INDEX CONCURRENTLY and friends): each statement
        # commits on its own, so the history row can only follow the last one.
        for number, current in enumerate(statements, start=1):
            try:
                conn.execute(current.sql)
            except psycopg.Error as exc:
                note = (
                    f"no-transaction migration: statements 1-{number - 1} of {len(statements)} "
                    "had run and stay; make them safe to run again"
                    if number > 1
                    else "no-transaction migration: nothing of it had run"
                )
                raise _Abort(_sql_failure(spec, current, exc, note)) from exc
        duration_ms = int((time.monotonic() - started) * 1000)
        try:
            with conn.transaction():
                conn.execute(
                    _INSERT_HISTORY, [spec.version, spec.name, spec.checksum, duration_ms, release]
                )
        except psycopg.Error as exc:
            raise _Abort(
                _sql_failure(spec, None, exc, "recording it in the history failed")
            ) from exc
    return AppliedMigration(
        version=spec.version, name=spec.name, checksum=spec.checksum, duration_ms=duration_ms
    )


def _database_failure(exc: psycopg.Error) -> MigrationError:
    sqlstate = exc.sqlstate or ""
    return MigrationError(
        kind=FailureKind.DATABASE,
        message=exc.diag.message_primary or _one_line(exc),
        sqlstate=sqlstate,
        # Lost connection, resource or lock trouble: worth another try. The rest
        # (permissions, a broken history table) needs a person.
        retryable=not sqlstate or sqlstate[:2] in {"08", "40", "53", "55", "57"},
    )


@contextmanager
def _session(creds: _Credentials, report: StatusCallback) -> Iterator[psycopg.Connection]:
    conn = _open(creds, report)
    lease = job_lease.current()
    if lease is not None:
        # Another worker owns the job once its lease is gone: stop this statement (it
        # fails as cancelled) rather than migrate beside the run that took over.
        lease.on_lost(conn.cancel_safe)
    try:
        yield conn
    finally:
        conn.close()  # also frees the session's advisory lock


def _migrate_with_slot(
    creds: _Credentials,
    specs: Sequence[MigrationSpec],
    release_version: str,
    result: MigrateResult,
    report: StatusCallback,
) -> None:
    with _session(creds, report) as conn:
        _take_migration_lock(conn, creds.dbname, report)
        _set_timeouts(conn)
        conn.execute(_CREATE_HISTORY)
        history = _read_history(conn)
        versions = {row.version for row in history}
        result.current_version = max(versions, default=None)
        changed = _changed(history, specs)
        if changed:
            raise _Abort(changed)
        for spec in specs:
            if spec.version in versions:
                result.skipped.append(spec.name)
                continue
            report(f"applying {spec.name}")
            result.applied.append(_apply(conn, spec, release_version))
            result.current_version = max(spec.version, result.current_version or 0)


# --- public API ---------------------------------------------------------------------------


def migrate_database(
    *,
    target: DatabaseTarget,
    migrations: Sequence[MigrationSpec],
    release_version: str,
    on_status: StatusCallback | None = None,
    slots: ServerSlots | None = None,
) -> MigrateResult:
    """Apply the pending migrations to one tenant database; never raises for a bad run.

    ``on_status`` receives short progress lines ("database is resuming", "waiting for a
    migration slot on <server>", "applying 0002_x.sql"). ``slots`` defaults to the
    console-database semaphore with ``TENANT_MIGRATIONS_PER_SERVER`` slots.
    """
    report: StatusCallback = on_status or (lambda _message: None)
    specs = sorted(migrations, key=lambda spec: spec.version)
    result = MigrateResult()
    slots = slots or ServerSlots()
    dbname = target.dbname or target.secret_id
    try:
        creds = _credentials(target)
        dbname = creds.dbname

        def on_wait() -> None:
            report(f"waiting for a migration slot on {target.server_key}")

        with slots.hold(target.server_key, on_wait=on_wait):
            _migrate_with_slot(creds, specs, release_version, result, report)
    except _Abort as abort:
        result.error = abort.error
    except SlotUnavailable as exc:
        result.error = MigrationError(kind=FailureKind.SLOT, message=str(exc), retryable=True)
    except psycopg.Error as exc:
        result.error = _database_failure(exc)
    if result.error:
        logger.warning(
            "tenant migrations on %s/%s stopped after %d applied: %s",
            target.server_key,
            dbname,
            len(result.applied),
            result.error.message,
        )
    else:
        logger.info(
            "tenant migrations on %s/%s: %d applied, %d already there",
            target.server_key,
            dbname,
            len(result.applied),
            len(result.skipped),
        )
    return result


def plan_database(
    *,
    target: DatabaseTarget,
    migrations: Sequence[MigrationSpec],
    on_status: StatusCallback | None = None,
) -> PlanResult:
    """What migrate_database would apply, without applying or creating anything.

    Takes no slot and no lock: one short read-only look at the history table.
    """
    report: StatusCallback = on_status or (lambda _message: None)
    specs = sorted(migrations, key=lambda spec: spec.version)
    plan = PlanResult()
    try:
        creds = _credentials(target)
        with _session(creds, report) as conn:
            plan.applied = _read_history(conn)
    except _Abort as abort:
        plan.error = abort.error
        return plan
    except psycopg.Error as exc:
        plan.error = _database_failure(exc)
        return plan
    versions = {row.version for row in plan.applied}
    plan.pending = [spec for spec in specs if spec.version not in versions]
    plan.error = _changed(plan.applied, specs)
    return plan

"""Restoring a ``pg_dump`` into a tenant's database, as the tenant's own role.

Both formats go through one ``psql`` session in a single transaction with
``ON_ERROR_STOP``: a plain (or gzipped plain) dump is fed to it as it is; a custom-format
archive is turned into the same SQL by ``pg_restore --file=-`` (no connection of its own),
with ``--no-owner --no-privileges`` so every object belongs to the tenant's role, and in
the ``replace`` mode ``--clean --if-exists`` so the dump's objects replace those the
release's migrations made. The first error stops it with PostgreSQL's message and
nothing of the dump stays (the transaction rolls back).

The same transaction records the restore in ``opsconsole_restores`` (job id, sha256 of the
dump): a step that runs again after a crash finds its own row and does not restore twice.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psycopg

from opsconsole.jobs import lease as job_lease
from tenants.provisioning.database_common import CONNECT_TIMEOUT_S, setting
from tenants.provisioning.database_dump import find_pg_tool

MARKER_TABLE = "opsconsole_restores"
CUSTOM, PLAIN, PLAIN_GZIP = "custom", "plain", "plain-gzip"
FORMATS = {
    CUSTOM: "pg_dump custom format (-Fc)",
    PLAIN: "plain SQL",
    PLAIN_GZIP: "plain SQL, gzipped",
}
REPLACE, DATA_ONLY, AS_IS = "replace", "data-only", "as-is"
MODES = {
    REPLACE: "Replace what the dump contains (custom format: each of its tables, views, "
    "sequences, types and functions dropped first, with what depends on it)",
    DATA_ONLY: "Data only: the release's migrations made the tables (custom format: --data-only)",
    AS_IS: "As the dump says (a plain dump runs exactly as written)",
}
# pg_restore's script names each item it writes: "-- Name: notes; Type: TABLE DATA; ...".
_ITEM_RE = re.compile(rb"^-- (?:Data for )?Name: (?P<name>[^;]+); Type: (?P<type>[^;]+);")
PROGRESS_EVERY_S = 1.0
# Control characters SQL text does not hold (tab, newline, carriage return it does).
_BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# A --list line: "3421; 1259 16386 TABLE public notes owner" (objects --clean would drop).
_TOC_RE = re.compile(
    r"^\d+; \d+ \d+ (?P<type>MATERIALIZED VIEW|TABLE|VIEW|SEQUENCE|TYPE|DOMAIN|FUNCTION) "
    r"(?P<schema>\S+) (?P<rest>.+)$"
)
_DROP_ORDER = ("MATERIALIZED VIEW", "VIEW", "TABLE", "SEQUENCE", "FUNCTION", "DOMAIN", "TYPE")


class RestoreError(RuntimeError):
    """The restore stopped: PostgreSQL's (or the tool's) own words."""


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    dbname: str
    user: str
    password: str


def sniff_format(head: bytes) -> str:
    """The dump's format from its first bytes, or a RestoreError saying what it is not."""
    if head.startswith(b"PGDMP"):
        return CUSTOM
    if head.startswith(b"\x1f\x8b"):
        return PLAIN_GZIP
    if len(head) >= 262 and head[257:262] == b"ustar":
        raise RestoreError(
            "This is a tar-format dump (-Ft): dump again with --format=custom (-Fc) or plain."
        )
    if head.startswith(b"PK\x03\x04"):
        raise RestoreError("This is a zip archive, not a pg_dump file: unzip it first.")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""  # (a multi-byte character cut at the end is fine)
        with contextlib.suppress(UnicodeDecodeError):
            text = head[:-4].decode("utf-8")
    if not text.strip() or _BINARY.search(text):
        raise RestoreError(
            "This is not a pg_dump file: a custom-format archive starts with PGDMP, a plain "
            "dump is SQL text (it may be gzipped)."
        )
    return PLAIN


def _tools(server_major: int) -> tuple[str, str]:
    return find_pg_tool("psql", server_major), find_pg_tool("pg_restore", server_major)


def read_toc(pg_restore: str, archive: Path) -> list[bytes]:
    """The custom archive's table of contents, one line an item."""
    out = subprocess.run(
        [pg_restore, "--list", str(archive)], capture_output=True, timeout=120, check=False
    )
    if out.returncode != 0:
        raise RestoreError(
            f"pg_restore cannot read the archive: {out.stderr.decode(errors='replace')[-500:]}"
        )
    return [line for line in out.stdout.splitlines() if line and not line.startswith(b";")]


def drops_for(toc: list[bytes]) -> bytes:
    """``DROP ... IF EXISTS ... CASCADE`` for every relation, sequence, type and function
    the archive makes, views first. pg_restore's own ``--clean`` drops piece by piece as
    if the database held the dump's exact schema (a default it never had, an identity
    column it calls a serial) and fails where the release's migrations made the tables
    differently; dropping the whole object replaces it whatever it was."""
    found: dict[str, list[str]] = {kind: [] for kind in _DROP_ORDER}
    for raw in toc:
        match = _TOC_RE.match(raw.decode(errors="replace"))
        if not match:
            continue
        kind, schema, rest = match["type"], match["schema"], match["rest"]
        if kind == "FUNCTION":
            name, sep, _owner = rest.rpartition(")")
            base, _, args = name.partition("(")
            target = f"{_quote(schema)}.{_quote(base)}({args})" if sep else ""
        else:
            target = f"{_quote(schema)}.{_quote(rest.split(' ')[0])}"
        if target:
            found[kind].append(target)
    lines = [
        f"DROP {kind} IF EXISTS {target} CASCADE;" for kind in _DROP_ORDER for target in found[kind]
    ]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def already_restored(conn: Connection, job_id: int) -> bool:
    with psycopg.connect(**_libpq(conn), autocommit=True) as db:
        found = db.execute(
            "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = 'public' AND tablename = %s",
            [MARKER_TABLE],
        ).fetchone()
        if not found:
            return False
        return bool(
            db.execute(
                f"SELECT 1 FROM public.{MARKER_TABLE} WHERE job_id = %s", [job_id]
            ).fetchone()
        )


def server_major(conn: Connection) -> int:
    with psycopg.connect(**_libpq(conn), autocommit=True) as db:
        return db.info.server_version // 10000


def _libpq(conn: Connection) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "host": conn.host,
        "port": conn.port,
        "dbname": conn.dbname,
        "user": conn.user,
        "connect_timeout": CONNECT_TIMEOUT_S,
        "sslmode": setting("TENANT_DB_SSLMODE"),
    }
    if conn.password:
        kwargs["password"] = conn.password
    return kwargs


def restore(
    *,
    path: Path,
    fmt: str,
    mode: str,
    conn: Connection,
    job_id: int,
    sha256: str,
    on_progress: Callable[[str], None],
) -> dict[str, Any]:
    """Run the dump at ``path`` into the database; returns what was restored."""
    psql, pg_restore = _tools(server_major(conn))
    toc = read_toc(pg_restore, path) if fmt == CUSTOM else []
    total = len(toc)
    size = path.stat().st_size
    source: subprocess.Popen | None = None
    prologue = b""
    if fmt == CUSTOM:
        command = [pg_restore, "--file=-", "--no-owner", "--no-privileges", str(path)]
        if mode == REPLACE:
            prologue = drops_for(toc)
        elif mode == DATA_ONLY:
            command.insert(2, "--data-only")
        source = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stream: IO[bytes] = source.stdout  # type: ignore[assignment]
    elif fmt == PLAIN_GZIP:
        stream = gzip.open(path, "rb")  # noqa: SIM115 - closed below, after the feed
    else:
        stream = open(path, "rb")  # noqa: SIM115 - closed below, after the feed
    env = {**os.environ, "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S)}
    env.pop("PGPASSWORD", None)
    if conn.password:
        env["PGPASSWORD"] = conn.password  # never on the command line
    env["PGSSLMODE"] = setting("TENANT_DB_SSLMODE")
    env["PGAPPNAME"] = "opsconsole-restore"
    with tempfile.TemporaryFile() as errors:
        target = subprocess.Popen(
            [
                psql,
                "--no-psqlrc",
                "--quiet",
                "--single-transaction",
                "--set=ON_ERROR_STOP=1",
                f"--host={conn.host}",
                f"--port={conn.port}",
                f"--username={conn.user}",
                f"--dbname={conn.dbname}",
                "--no-password",
                "--file=-",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=env,
        )
        stopped = threading.Event()

        def stop() -> None:  # the job's lease is gone: another worker may take over
            stopped.set()
            target.kill()
            if source is not None:
                source.kill()

        beat = job_lease.current()
        if beat is not None:
            beat.on_lost(stop)
        try:
            fed = {"items": 0, "bytes": 0, "broken": not _write(target, prologue)}
            if not fed["broken"]:
                fed = _feed(
                    stream, target, fmt=fmt, total=total, size=size, on_progress=on_progress
                )
            if not fed["broken"]:
                _write(target, _marker_sql(job_id, sha256))
            # psql may have stopped at an error already: its exit code and words say why.
            with contextlib.suppress(BrokenPipeError):
                target.stdin.close()  # type: ignore[union-attr]
            code = target.wait(timeout=setting("TENANT_DUMP_TIMEOUT_S"))
        except BaseException:
            target.kill()
            if source is not None:
                source.kill()
            raise
        finally:
            stream.close()
        errors.seek(0)
        said = errors.read().decode(errors="replace").strip()
    if stopped.is_set():
        raise RestoreError("the job's lease was lost: the restore was stopped and rolled back")
    if source is not None:
        source.wait(timeout=60)
        if source.returncode:
            why = source.stderr.read().decode(errors="replace").strip()  # type: ignore[union-attr]
            raise RestoreError(f"pg_restore failed: {why[-1000:]}")
    if code != 0:
        raise RestoreError(_first_error(said) or f"psql exited with {code}")
    return {"items": fed["items"], "total_items": total, "bytes": fed["bytes"], "format": fmt}


def _feed(stream, target, *, fmt: str, total: int, size: int, on_progress) -> dict[str, Any]:
    """Copy the SQL into psql line by line, reporting progress about once a second."""
    items, sent, last, label = 0, 0, 0.0, ""
    for line in stream:
        if fmt == CUSTOM:
            match = _ITEM_RE.match(line)
            if match:
                items += 1
                kind, name = (match[g].decode(errors="replace") for g in ("type", "name"))
                label = f"{kind} {name}"
        if not _write(target, line):
            return {"items": items, "bytes": sent, "broken": True}  # psql stopped: its error
        sent += len(line)
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S:
            last = now
            if fmt == CUSTOM:
                on_progress(f"item {items} of {total}: {label}" if total else label)
            else:
                read = _position(stream, sent)
                on_progress(f"{read * 100 // max(size, 1)} % of {size:,} bytes")
    on_progress(f"{items} of {total} items sent" if fmt == CUSTOM else f"{sent:,} bytes sent")
    return {"items": items, "bytes": sent, "broken": False}


def _write(target, data: bytes) -> bool:
    """Send ``data`` to psql; False once psql has stopped reading (it met an error)."""
    if not data:
        return True
    try:
        target.stdin.write(data)
    except BrokenPipeError:
        return False
    return True


def _position(stream, sent: int) -> int:
    """How far into the file the reader is (the gzip's compressed offset when gzipped)."""
    raw = getattr(stream, "fileobj", None)
    try:
        return (raw or stream).tell()
    except (OSError, ValueError):
        return sent


def _marker_sql(job_id: int, sha256: str) -> bytes:
    safe = re.sub(r"[^0-9a-f]", "", sha256)
    return (
        f"\nCREATE TABLE IF NOT EXISTS public.{MARKER_TABLE} (job_id bigint PRIMARY KEY, "
        "sha256 text NOT NULL, restored_at timestamptz NOT NULL DEFAULT now());\n"
        f"INSERT INTO public.{MARKER_TABLE} (job_id, sha256) VALUES ({int(job_id)}, '{safe}');\n"
    ).encode()


def _first_error(said: str) -> str:
    """psql's first ERROR line and what follows it (DETAIL, HINT, LINE), not the noise."""
    lines = said.splitlines()
    for n, line in enumerate(lines):
        if "ERROR:" in line:
            return " ".join(part.strip() for part in lines[n : n + 4])[:1500]
    return said[-1500:]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()

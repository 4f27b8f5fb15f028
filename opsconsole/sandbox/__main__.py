"""`python -m opsconsole.sandbox run|test|bench`: what `make run`, `make test` and
`make bench` call.

run   starts the console with everything it needs, in the foreground, until Ctrl-C:
      PostgreSQL and Redis (found or embedded), the sandbox's local AWS (seeded),
      migrations, the admin user, a Celery worker, Celery beat and the web server.
test  finds or starts PostgreSQL and Redis the same way, then runs ruff,
      makemigrations --check and pytest (extra arguments go to pytest).
bench runs every script in bench/ against the same servers (or the ones named; options
      after the names go to each script: `bench rollout --tenants 200`).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from opsconsole.sandbox import services

BASE_DIR = services.BASE_DIR
PY = sys.executable
BIN = Path(PY).parent


def _say(message: str) -> None:
    print(f"opsconsole: {message}", flush=True)


def _fail(message: str, code: int = 2) -> None:
    print(f"opsconsole: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def _manage(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run([PY, "manage.py", *args], cwd=BASE_DIR, env=env)
    if result.returncode != 0:
        _fail(f"manage.py {' '.join(args)} failed (exit {result.returncode})", 1)


def _base_env(*, database: services.Database, broker_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database.url,
        REDIS_URL=broker_url,
        SANDBOX_PG_HOST=database.host,
        SANDBOX_PG_PORT=str(database.port),
        SANDBOX_PG_USER=database.user,
        PYTHONUNBUFFERED="1",
    )
    return env


# --- run -------------------------------------------------------------------------------


def run() -> None:
    sandbox = os.environ.get("OPSCONSOLE_SANDBOX", "1") not in {"0", "false", "no"}
    port = int(os.environ.get("PORT", "8000"))
    aws_port = int(os.environ.get("SANDBOX_AWS_PORT", "4566"))
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")

    wanted = [(port, "PORT", "the web server")]
    if sandbox:
        wanted.append((aws_port, "SANDBOX_AWS_PORT", "the sandbox AWS"))
    for number, variable, what in wanted:
        if not services.port_free("127.0.0.1", number):
            _fail(
                f"port {number} ({what}) is already in use on 127.0.0.1. Stop whatever "
                f"listens there, or set {variable} to another port."
            )

    services.SANDBOX_DIR.mkdir(exist_ok=True)
    logs = services.SANDBOX_DIR / "logs"
    logs.mkdir(exist_ok=True)
    database = services.resolve_database()
    _say(f"database: {database.how}")
    broker = services.resolve_broker()
    _say(f"broker: {broker.how}")
    env = _base_env(database=database, broker_url=broker.url)
    env.setdefault("AWS_DEFAULT_REGION", region)

    children: list[tuple[str, subprocess.Popen]] = []

    def stop_all(*_args) -> None:
        nonlocal database
        for name, proc in reversed(children):
            if proc.poll() is None:
                _say(f"stopping {name}")
            services.stop_process(proc)
        children.clear()
        if broker.stop is not None:
            _say("stopping the embedded Redis")
            broker.stop()
            broker.stop = None
        if database.stop is not None:
            _say("stopping the embedded PostgreSQL (its data stays in .sandbox/pgdata)")
            database.stop()
            database = dataclasses.replace(database, stop=None)

    def on_signal(signum, _frame) -> None:
        raise KeyboardInterrupt

    # Explicitly, also for SIGINT: a shell that starts us in the background sets SIGINT to
    # "ignore", and Python then keeps it ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        if sandbox:
            env["OPSCONSOLE_SANDBOX"] = "1"
            env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{aws_port}"
            env["SANDBOX_AWS_PORT"] = str(aws_port)
            _say(f"starting the sandbox AWS (local AWS on moto) on 127.0.0.1:{aws_port}")
            local_aws = services.start_local_aws(port=aws_port, log_path=logs / "aws.log")
            children.append(("sandbox AWS", local_aws))
        _manage("migrate", "--noinput", env=env)
        if sandbox:
            _say("seeding the sandbox AWS account (VPC, shared database, ECR, S3, demo releases)")
            _manage("sandbox_seed", env=env)
        _manage("ensure_admin", env=env)

        processes = {
            "worker": [
                str(BIN / "celery"),
                "-A",
                "opsconsole",
                "worker",
                "-l",
                "INFO",
                "--concurrency",
                os.environ.get("WORKER_CONCURRENCY", "4"),
                "-n",
                "worker@%h",
            ],
            "beat": [
                str(BIN / "celery"),
                "-A",
                "opsconsole",
                "beat",
                "-l",
                "INFO",
                "--schedule",
                str(services.SANDBOX_DIR / "celerybeat-schedule"),
            ],
            "web": [
                str(BIN / "gunicorn"),
                "opsconsole.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--access-logfile",
                "-",
            ],
        }
        for name, argv in processes.items():
            log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
            children.append(
                (
                    name,
                    subprocess.Popen(
                        argv,
                        cwd=BASE_DIR,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    ),
                )
            )
        deadline = time.monotonic() + 60
        while not services.port_open("127.0.0.1", port):
            for name, proc in children:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited at start; see {logs / (name + '.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError("the web server did not answer within 60 s")
            time.sleep(0.2)
        _print_welcome(
            port=port,
            aws_port=aws_port if sandbox else None,
            logs=logs,
            region=env["AWS_DEFAULT_REGION"],
        )
        while True:
            for name, proc in children:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} stopped (exit {proc.returncode}); see {logs / (name + '.log')}"
                    )
            time.sleep(1)
    except KeyboardInterrupt:
        _say("shutting down")
        stop_all()
        _say("stopped")
    except RuntimeError as exc:
        stop_all()
        _fail(str(exc), 1)
    finally:
        # Also when a start-up step fails (its _fail exits): nothing we started outlives us.
        stop_all()


def _print_welcome(*, port: int, aws_port: int | None, logs: Path, region: str) -> None:
    given = os.environ.get("OPSCONSOLE_ADMIN_PASSWORD")
    password_file = services.SANDBOX_DIR / "admin_password"
    password = given or (password_file.read_text().strip() if password_file.exists() else "?")
    lines = [
        "",
        "  opsconsole is running",
        f"    console   http://127.0.0.1:{port}/",
        f"    login     admin / {password}",
    ]
    if aws_port:
        lines += [
            f"    AWS       http://127.0.0.1:{aws_port} (sandbox, region {region})",
            f"              AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox "
            f"aws --endpoint-url http://127.0.0.1:{aws_port} --region {region} "
            "lambda list-functions",
        ]
    lines += [f"    logs      {logs}/", "  Ctrl-C stops everything.", ""]
    print("\n".join(lines), flush=True)


# --- test ------------------------------------------------------------------------------


def test(pytest_args: list[str]) -> None:
    database = services.resolve_database(create=False)
    _say(f"test database server: {database.how}")
    broker = services.resolve_broker(redis_db=1)
    _say(f"test broker: {broker.how}")
    env = _base_env(database=database, broker_url=broker.url)
    env.update(OPSCONSOLE_SANDBOX="1", AWS_DEFAULT_REGION="us-east-1")
    env.pop("AWS_ENDPOINT_URL", None)
    steps = [
        ("ruff", [str(BIN / "ruff"), "check", "."]),
        ("ruff format", [str(BIN / "ruff"), "format", "--check", "."]),
        ("migrations", [PY, "manage.py", "makemigrations", "--check", "--dry-run"]),
        # Long fault drills and long scenarios run with `make faults` (-m "faults or long"),
        # not in every test run.
        (
            "pytest",
            [
                PY,
                "-m",
                "pytest",
                *(
                    pytest_args
                    if "-m" in pytest_args
                    else ["-m", "not faults and not long", *pytest_args]
                ),
            ],
        ),
    ]
    for name, argv in steps:
        _say(f"{name}: {' '.join(argv[1:]) if name != 'pytest' else ' '.join(argv[2:])}")
        result = subprocess.run(argv, cwd=BASE_DIR, env=env)
        if result.returncode != 0:
            _fail(f"{name} failed (exit {result.returncode})", result.returncode or 1)


# --- bench -----------------------------------------------------------------------------


def bench(argv: list[str]) -> None:
    first_option = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    names, options = argv[:first_option], argv[first_option:]
    database = services.resolve_database()
    broker = services.resolve_broker(redis_db=2)
    env = _base_env(database=database, broker_url=broker.url)
    env.setdefault("OPSCONSOLE_SANDBOX", "1")
    scripts = sorted((BASE_DIR / "bench").glob("*.py"))
    scripts = [s for s in scripts if not s.name.startswith("_")]
    if names:
        scripts = [s for s in scripts if s.stem in names]
    _manage("migrate", "--noinput", env=env)
    failed = []
    for script in scripts:
        _say(f"bench {script.stem}")
        if subprocess.run([PY, str(script), *options], cwd=BASE_DIR, env=env).returncode != 0:
            failed.append(script.stem)
    if failed:
        _fail(f"benchmarks failed: {', '.join(failed)}", 1)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in {"run", "test", "bench"}:
        _fail("usage: python -m opsconsole.sandbox run|test [pytest args]|bench [names] [options]")
    command, rest = argv[0], argv[1:]
    os.chdir(BASE_DIR)
    if command == "run":
        run()
    elif command == "test":
        test(rest)
    else:
        bench(rest)


if __name__ == "__main__":
    main(sys.argv[1:])

"""bench migrate: 5 migrations on 200 tenant databases on one server.

Sequential (one runner after another, what a loop over tenants does) versus the runner's
concurrency: a thread pool sized like a worker pool, held to TENANT_MIGRATIONS_PER_SERVER
slots on the shared server (and once more with a larger slot count, for comparison).
Databases are ``bench_mig_NNN`` on the sandbox PostgreSQL; they are dropped at the end.

    python bench/migrate.py [--tenants 200] [--workers 8] [--slots 4] [--more-slots 8]

The last line is the summary:
``bench migrate: tenants=200 sequential_s=N concurrent_s=N speedup=N``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from psycopg import sql  # noqa: E402

from deployments.migration_files import MigrationSpec, parse_migration_files  # noqa: E402
from deployments.migration_runner import (  # noqa: E402
    DatabaseTarget,
    MigrateResult,
    ServerSlots,
    migrate_database,
)
from opsconsole.sandbox.endpoints import sandbox_server_connection  # noqa: E402

PREFIX = "bench_mig_"

# A small but realistic release: tables with some rows, an added column, an index built
# concurrently (outside a transaction) and a view.
FILES = [
    (
        "0001_customers.sql",
        "CREATE TABLE customers (\n"
        "    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
        "    email text NOT NULL UNIQUE,\n"
        "    created_at timestamptz NOT NULL DEFAULT now()\n"
        ");\n"
        "INSERT INTO customers (email)\n"
        "SELECT 'c' || g || '@example.com' FROM generate_series(1, 500) AS g;\n",
    ),
    (
        "0002_orders.sql",
        "CREATE TABLE orders (\n"
        "    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
        "    customer_id bigint NOT NULL REFERENCES customers (id),\n"
        "    total_cents bigint NOT NULL DEFAULT 0\n"
        ");\n"
        "INSERT INTO orders (customer_id, total_cents)\n"
        "SELECT (g % 500) + 1, g * 10 FROM generate_series(1, 2000) AS g;\n",
    ),
    ("0003_order_status.sql", "ALTER TABLE orders ADD COLUMN status text;\n"),
    (
        "0004_orders_customer_index.sql",
        "-- opsconsole:no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_idx ON orders (customer_id);\n",
    ),
    (
        "0005_customer_totals.sql",
        "CREATE VIEW customer_totals AS\n"
        "SELECT customer_id, sum(total_cents) AS total_cents FROM orders GROUP BY customer_id;\n",
    ),
]


def admin():
    return sandbox_server_connection()


def drop_all(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s", [PREFIX + "%"]
    ).fetchall()
    for (name,) in rows:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


def target_for(name: str, server_key: str) -> DatabaseTarget:
    return DatabaseTarget(
        server_key=server_key,
        host=settings.SANDBOX_PG_HOST,
        port=settings.SANDBOX_PG_PORT,
        user=settings.SANDBOX_PG_USER,
        dbname=name,
    )


def reset(targets: list[DatabaseTarget]) -> None:
    """Back to empty databases between runs (faster than dropping and creating them)."""
    for target in targets:
        with psycopg.connect(
            host=target.host,
            port=target.port,
            user=target.user,
            dbname=target.dbname,
            autocommit=True,
        ) as conn:
            conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")


def check(results: list[MigrateResult], label: str) -> None:
    failed = [r.error for r in results if not r.ok or len(r.applied) != len(FILES)]
    if failed:
        raise SystemExit(f"bench migrate: {label}: {len(failed)} tenants failed: {failed[0]}")


def run_sequential(targets: list[DatabaseTarget], specs: list[MigrationSpec], slots: int) -> float:
    semaphore = ServerSlots(limit=slots)
    started = time.monotonic()
    results = [
        migrate_database(target=t, migrations=specs, release_version="bench", slots=semaphore)
        for t in targets
    ]
    elapsed = time.monotonic() - started
    check(results, "sequential")
    return elapsed


def run_concurrent(
    targets: list[DatabaseTarget], specs: list[MigrationSpec], *, workers: int, slots: int
) -> float:
    semaphore = ServerSlots(limit=slots, poll_s=0.05)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(
            pool.map(
                lambda t: migrate_database(
                    target=t, migrations=specs, release_version="bench", slots=semaphore
                ),
                targets,
            )
        )
    elapsed = time.monotonic() - started
    check(results, f"{workers} workers, {slots} slots")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8, help="threads, like worker processes")
    parser.add_argument(
        "--slots",
        type=int,
        default=int(getattr(settings, "TENANT_MIGRATIONS_PER_SERVER", 4)),
        help="migrations at once on the server (TENANT_MIGRATIONS_PER_SERVER)",
    )
    parser.add_argument("--more-slots", type=int, default=8, help="0 to skip that run")
    args = parser.parse_args()
    logging.getLogger("deployments.migration_runner").setLevel(logging.WARNING)

    specs = parse_migration_files(FILES)
    server_key = f"bench-{os.getpid()}"
    names = [f"{PREFIX}{n:03d}" for n in range(1, args.tenants + 1)]
    targets = [target_for(name, server_key) for name in names]
    with admin() as conn:
        drop_all(conn)  # leftovers of an interrupted run
        started = time.monotonic()
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"created {len(names)} databases in {time.monotonic() - started:.1f} s", flush=True)
    try:
        sequential = run_sequential(targets, specs, args.slots)
        print(
            f"sequential: {sequential:.1f} s ({sequential / len(targets) * 1000:.0f} ms a tenant)",
            flush=True,
        )
        reset(targets)
        concurrent = run_concurrent(targets, specs, workers=args.workers, slots=args.slots)
        print(
            f"concurrent: {concurrent:.1f} s with {args.workers} workers and {args.slots} "
            f"slots on the server (x{sequential / concurrent:.2f})",
            flush=True,
        )
        if args.more_slots and args.more_slots != args.slots:
            reset(targets)
            workers = max(args.workers, args.more_slots)
            more = run_concurrent(targets, specs, workers=workers, slots=args.more_slots)
            print(
                f"concurrent: {more:.1f} s with {workers} workers and {args.more_slots} "
                f"slots on the server (x{sequential / more:.2f})",
                flush=True,
            )
    finally:
        with admin() as conn:
            drop_all(conn)
    print(
        f"bench migrate: tenants={len(targets)} sequential_s={sequential:.2f} "
        f"concurrent_s={concurrent:.2f} speedup={sequential / concurrent:.2f}"
    )


if __name__ == "__main__":
    main()

"""The migration runner against real PostgreSQL databases, one per tenant."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import boto3
import psycopg
import pytest

from deployments import migration_runner
from deployments.migration_runner import (
    HISTORY_TABLE,
    MIGRATION_LOCK_KEY,
    DatabaseTarget,
    FailureKind,
    ServerSlots,
    SlotUnavailable,
    migrate_database,
    plan_database,
)

from .conftest import query, spec

FIVE = [
    spec(1, "customers", "CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL);"),
    spec(2, "orders", "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint);"),
    spec(
        3,
        "order_total",
        "ALTER TABLE orders ADD COLUMN total_cents bigint;\n"
        "INSERT INTO orders (id, customer_id, total_cents) VALUES (1, 1, 250);\n",
    ),
    spec(4, "invoices", "CREATE TABLE invoices (id bigint PRIMARY KEY);"),
    spec(5, "invoice_order", "ALTER TABLE invoices ADD COLUMN order_id bigint;"),
]

BROKEN_THIRD = spec(
    3,
    "order_total",
    "ALTER TABLE orders ADD COLUMN total_cents bigint;\n"
    "INSERT INTO orders (id, customer_id, total_cents) VALUES (1, 1, 250);\n"
    "UPDATE orders SET total_cents = total_cents * 100\n"
    "  FROM order_lines WHERE order_lines.order_id = orders.id;\n",
)


def tables(target: DatabaseTarget) -> set[str]:
    rows = query(target, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {name for (name,) in rows}


def history(target: DatabaseTarget) -> list[tuple]:
    return query(
        target,
        f"SELECT version, name, checksum, release, applied_at, duration_ms FROM {HISTORY_TABLE} "
        "ORDER BY version",
    )


def test_apply_creates_the_schema_and_records_history(tenant_db):
    statuses: list[str] = []
    result = migrate_database(
        target=tenant_db, migrations=FIVE, release_version="1.0.0", on_status=statuses.append
    )
    assert result.ok, result.error
    assert [m.name for m in result.applied] == [m.name for m in FIVE]
    assert result.skipped == []
    assert result.current_version == 5
    assert {"customers", "orders", "invoices", HISTORY_TABLE} <= tables(tenant_db)
    rows = history(tenant_db)
    assert [(v, n, c, r) for v, n, c, r, _, _ in rows] == [
        (m.version, m.name, m.checksum, "1.0.0") for m in FIVE
    ]
    assert all(duration >= 0 for *_, duration in rows)
    assert statuses[-1] == "applying 0005_invoice_order.sql"


def test_apply_again_changes_nothing_and_a_new_release_applies_only_its_new_file(tenant_db):
    assert migrate_database(target=tenant_db, migrations=FIVE[:3], release_version="1.0.0").ok
    before = history(tenant_db)

    again = migrate_database(target=tenant_db, migrations=FIVE[:3], release_version="1.0.0")
    assert again.ok
    assert again.applied == []
    assert again.skipped == [m.name for m in FIVE[:3]]
    assert history(tenant_db) == before
    assert query(tenant_db, "SELECT count(*) FROM orders") == [(1,)]  # no second insert

    newer = migrate_database(target=tenant_db, migrations=FIVE[:4], release_version="1.1.0")
    assert [m.name for m in newer.applied] == ["0004_invoices.sql"]
    assert history(tenant_db)[:3] == before
    assert history(tenant_db)[3][3] == "1.1.0"


def test_changed_checksum_of_an_applied_migration_is_refused(tenant_db):
    assert migrate_database(target=tenant_db, migrations=FIVE[:2], release_version="1.0.0").ok
    edited = spec(2, "orders", "CREATE TABLE orders (id bigint PRIMARY KEY, note text);")

    result = migrate_database(
        target=tenant_db, migrations=[FIVE[0], edited, FIVE[2]], release_version="1.1.0"
    )
    assert result.error is not None
    assert result.error.kind == FailureKind.CHECKSUM
    assert result.error.migration == "0002_orders.sql"
    assert "0002_orders.sql" in str(result.error)
    assert result.error.retryable is False
    assert result.applied == []
    assert [row[0] for row in history(tenant_db)] == [1, 2]  # 0003 was not run
    assert query(tenant_db, "SELECT count(*) FROM orders") == [(0,)]

    plan = plan_database(target=tenant_db, migrations=[FIVE[0], edited, FIVE[2]])
    assert plan.error is not None and plan.error.kind == FailureKind.CHECKSUM


def test_failure_in_the_third_of_five_keeps_two_and_reports_postgres(tenant_db):
    migrations = [*FIVE[:2], BROKEN_THIRD, *FIVE[3:]]
    result = migrate_database(target=tenant_db, migrations=migrations, release_version="2.0.0")

    assert [m.name for m in result.applied] == ["0001_customers.sql", "0002_orders.sql"]
    error = result.error
    assert error is not None
    assert error.kind == FailureKind.SQL
    assert error.migration == "0003_order_total.sql"
    assert error.sqlstate == "42P01"
    assert error.message.startswith('relation "order_lines" does not exist')
    assert error.statement.startswith("UPDATE orders SET total_cents")
    # PostgreSQL points at order_lines: line 4, column 8 of the file.
    assert (error.line, error.column) == (4, 8)
    assert BROKEN_THIRD.sql[error.position - 1 :].startswith("order_lines WHERE")
    assert "0003_order_total.sql, line 4, column 8" in str(error)
    assert error.retryable is False
    # Earlier migrations stay, the failed one left nothing behind, later ones never ran.
    assert [row[0] for row in history(tenant_db)] == [1, 2]
    columns = query(
        tenant_db,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'orders'",
    )
    assert "total_cents" not in {c for (c,) in columns}
    assert "invoices" not in tables(tenant_db)

    # The failed file never counted as applied, so a fixed release goes on from there.
    fixed = migrate_database(target=tenant_db, migrations=FIVE, release_version="2.0.1")
    assert [m.version for m in fixed.applied] == [3, 4, 5]


def test_error_without_position_names_the_statement_and_context(tenant_db):
    bad = spec(
        1,
        "backfill",
        "CREATE TABLE t (n int);\nDO $$ BEGIN PERFORM 1 / 0; END $$;\n",
    )
    result = migrate_database(target=tenant_db, migrations=[bad], release_version="1")
    assert result.error is not None
    assert result.error.sqlstate == "22012"
    assert result.error.message.startswith("division by zero")
    assert result.error.statement == "DO $$ BEGIN PERFORM 1 / 0; END $$"
    assert result.error.line == 2 and result.error.position is None
    assert "PL/pgSQL" in result.error.context
    assert "t" not in tables(tenant_db)


def test_two_runners_on_one_database_run_one_after_the_other(tenant_db):
    slow_first = [spec(1, "slow", "SELECT pg_sleep(1.0);\nCREATE TABLE a (id int);")]
    second = [*slow_first, spec(2, "b", "CREATE TABLE b (id int);")]
    first_applying = threading.Event()
    results: dict[str, object] = {}
    second_statuses: list[str] = []

    def first_status(message: str) -> None:
        if message.startswith("applying"):
            first_applying.set()

    def run(name, migrations, on_status):
        results[name] = migrate_database(
            target=tenant_db, migrations=migrations, release_version=name, on_status=on_status
        )

    one = threading.Thread(target=run, args=("r1", slow_first, first_status))
    one.start()
    assert first_applying.wait(10)
    two = threading.Thread(target=run, args=("r2", second, second_statuses.append))
    two.start()
    one.join(20)
    two.join(20)

    r1, r2 = results["r1"], results["r2"]
    assert r1.ok and r2.ok, (r1.error, r2.error)
    assert [m.name for m in r1.applied] == ["0001_slow.sql"]
    assert r2.skipped == ["0001_slow.sql"]
    assert [m.name for m in r2.applied] == ["0002_b.sql"]
    assert "waiting for another migration run on this database" in second_statuses
    (v1, *_, end1, _d1), (v2, *_, end2, d2) = history(tenant_db)
    assert (v1, v2) == (1, 2)
    assert end2 - timedelta(milliseconds=d2) >= end1  # the second began after the first ended


def test_lock_wait_is_bounded_with_a_clear_message(tenant_db, settings):
    settings.TENANT_MIGRATION_LOCK_WAIT_S = 1
    with psycopg.connect(
        host=tenant_db.host, port=tenant_db.port, user=tenant_db.user, dbname=tenant_db.dbname
    ) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
        result = migrate_database(target=tenant_db, migrations=FIVE[:1], release_version="1")
        assert result.error is not None
        assert result.error.kind == FailureKind.LOCK
        assert result.error.retryable is True
        assert f"kept database {tenant_db.dbname} locked for more than 1 s" in str(result.error)
        assert "customers" not in tables(tenant_db)
    assert migrate_database(target=tenant_db, migrations=FIVE[:1], release_version="1").ok


def test_no_transaction_migration_creates_an_index_concurrently(tenant_db):
    init = spec(1, "orders", "CREATE TABLE orders (id int, customer text);")
    index_sql = "CREATE INDEX CONCURRENTLY orders_customer ON orders (customer);"

    # Without the marker the runner's transaction makes PostgreSQL refuse it.
    unmarked = migrate_database(
        target=tenant_db, migrations=[init, spec(2, "idx", index_sql)], release_version="1"
    )
    assert unmarked.error is not None
    assert "cannot run inside a transaction block" in unmarked.error.message

    marked = spec(2, "idx", f"-- opsconsole:no-transaction\n{index_sql}\n")
    result = migrate_database(target=tenant_db, migrations=[init, marked], release_version="2")
    assert result.ok, result.error
    assert [m.name for m in result.applied] == ["0002_idx.sql"]
    assert query(
        tenant_db,
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_customer'::regclass",
    ) == [(True,)]
    assert [row[0] for row in history(tenant_db)] == [1, 2]


def test_failing_no_transaction_migration_is_not_recorded_and_says_what_stayed(tenant_db):
    init = spec(1, "orders", "CREATE TABLE orders (id int, customer text);")
    broken = spec(
        2,
        "idx",
        "-- opsconsole:no-transaction\n"
        "CREATE INDEX CONCURRENTLY orders_customer ON orders (customer);\n"
        "CREATE INDEX CONCURRENTLY orders_total ON orders (total);\n",
    )
    result = migrate_database(target=tenant_db, migrations=[init, broken], release_version="1")
    assert result.error is not None
    assert result.error.sqlstate == "42703"  # column "total" does not exist
    assert result.error.line == 3
    assert "statements 1-1 of 2 had run and stay" in result.error.message
    assert [row[0] for row in history(tenant_db)] == [1]


def test_shared_instance_runs_at_most_n_migrations_at_once(make_tenant_db, settings, server_key):
    settings.TENANT_MIGRATIONS_PER_SERVER = 3
    targets = [make_tenant_db() for _ in range(10)]
    migrations = [
        spec(1, "wait", "CREATE TABLE t (id int);\nSELECT pg_sleep(0.4);"),
        spec(2, "more", "ALTER TABLE t ADD COLUMN note text;"),
    ]
    statuses: list[str] = []
    results = []

    def run(target: DatabaseTarget) -> None:
        results.append(
            migrate_database(
                target=target, migrations=migrations, release_version="1", on_status=statuses.append
            )
        )

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(results) == 10 and all(r.ok for r in results), [r.error for r in results]
    # Each tenant's busy interval, from its own history table: first start to last end.
    intervals = []
    for target in targets:
        rows = history(target)
        start = rows[0][4] - timedelta(milliseconds=rows[0][5])
        intervals.append((start, rows[-1][4]))
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert 1 < peak <= 3
    assert f"waiting for a migration slot on {server_key}" in statuses


def test_server_slots_count_across_connections(db, server_key):
    slots = ServerSlots(limit=2, wait_s=0.3, poll_s=0.05)
    with slots.hold(server_key) as a, slots.hold(server_key) as b:
        assert {a, b} == {0, 1}
        waited = []
        with (
            pytest.raises(SlotUnavailable, match=f"all 2 migration slots on {server_key}"),
            slots.hold(server_key, on_wait=lambda: waited.append(True)),
        ):
            pass
        assert waited == [True]
        with slots.hold("another-server") as other:  # other servers are not affected
            assert other in {0, 1}
    with slots.hold(server_key) as again:
        assert again in {0, 1}


def test_connect_retries_while_the_database_resumes(tenant_db, monkeypatch):
    real_connect = migration_runner._connect
    calls = []

    def resuming_connect(**kwargs):
        calls.append(kwargs["connect_timeout"])
        if len(calls) <= 2:
            raise psycopg.OperationalError(
                'connection failed: connection to server at "10.0.0.5", port 5432 failed: '
                "FATAL:  the database system is starting up"
            )
        return real_connect(**kwargs)

    monkeypatch.setattr(migration_runner, "_connect", resuming_connect)
    statuses: list[str] = []
    result = migrate_database(
        target=tenant_db, migrations=FIVE[:1], release_version="1", on_status=statuses.append
    )
    assert result.ok, result.error
    assert len(calls) == 3
    assert statuses.count("database is resuming") == 1
    assert statuses.index("database is resuming") < statuses.index("applying 0001_customers.sql")


def test_connect_gives_up_after_the_resume_budget(tenant_db, monkeypatch, settings):
    settings.TENANT_MIGRATION_RESUME_WAIT_S = 1
    calls = []

    def refused(**kwargs):
        calls.append(1)
        raise psycopg.OperationalError("connection failed: Connection refused")

    monkeypatch.setattr(migration_runner, "_connect", refused)
    result = migrate_database(target=tenant_db, migrations=FIVE[:1], release_version="1")
    assert result.error is not None
    assert result.error.kind == FailureKind.CONNECT
    assert result.error.retryable is True
    assert "did not accept connections within 1 s" in result.error.message
    assert len(calls) >= 2


def test_a_wrong_database_fails_at_once_without_waiting(tenant_db):
    missing = DatabaseTarget(
        server_key=tenant_db.server_key,
        host=tenant_db.host,
        port=tenant_db.port,
        user=tenant_db.user,
        dbname=f"{tenant_db.dbname}_missing",
    )
    statuses: list[str] = []
    result = migrate_database(
        target=missing, migrations=FIVE[:1], release_version="1", on_status=statuses.append
    )
    assert result.error is not None
    assert result.error.kind == FailureKind.CONNECT
    assert "does not exist" in result.error.message
    assert "database is resuming" not in statuses


def test_plan_lists_pending_without_touching_the_database(tenant_db):
    plan = plan_database(target=tenant_db, migrations=FIVE)
    assert plan.error is None
    assert [m.version for m in plan.pending] == [1, 2, 3, 4, 5]
    assert plan.current_version is None
    assert tables(tenant_db) == set()  # not even the history table

    assert migrate_database(target=tenant_db, migrations=FIVE[:2], release_version="1").ok
    plan = plan_database(target=tenant_db, migrations=FIVE)
    assert [m.version for m in plan.pending] == [3, 4, 5]
    assert [row.name for row in plan.applied] == ["0001_customers.sql", "0002_orders.sql"]
    assert plan.current_version == 2


def test_credentials_come_from_the_tenant_secret_and_stay_out_of_logs(aws, tenant_db, caplog):
    password = "s3cr3t-Pa55word-never-logged"
    secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="tenant/acme/db",
        SecretString=json.dumps(
            {
                "host": tenant_db.host,
                "port": tenant_db.port,
                "dbname": tenant_db.dbname,
                "username": tenant_db.user,
                "password": password,
            }
        ),
    )
    target = DatabaseTarget(server_key=tenant_db.server_key, secret_id=secret["ARN"])
    caplog.set_level("DEBUG")
    result = migrate_database(target=target, migrations=FIVE[:1], release_version="1")
    assert result.ok, result.error
    assert "customers" in tables(tenant_db)
    assert password not in caplog.text
    assert password not in repr(target) + repr(result)


def test_missing_secret_is_a_clear_error(aws, server_key):
    target = DatabaseTarget(server_key=server_key, secret_id="tenant/nobody/db")
    result = migrate_database(target=target, migrations=FIVE[:1], release_version="1")
    assert result.error is not None
    assert result.error.kind == FailureKind.SECRET
    assert "tenant/nobody/db" in result.error.message

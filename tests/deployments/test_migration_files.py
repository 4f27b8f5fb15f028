"""Registration-time checks of a release's migration files, and the statement splitter."""

from __future__ import annotations

import hashlib

import pytest
from django.core.exceptions import ValidationError

from deployments.migration_files import (
    MigrationFilesError,
    parse_migration_files,
    specs_for_release,
    split_statements,
)
from deployments.models import ArtifactType, Release, ReleaseMigration

INIT = "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL);\n"
INDEX = (
    "-- opsconsole:no-transaction\n"
    "CREATE INDEX CONCURRENTLY orders_customer ON orders (customer);\n"
)


def problems_of(files) -> list[str]:
    with pytest.raises(MigrationFilesError) as excinfo:
        parse_migration_files(files)
    return [str(p) for p in excinfo.value.problems]


def test_valid_files_become_specs_with_sha256_and_marker():
    specs = parse_migration_files(
        [("0001_init.sql", INIT.encode()), ("0002_orders_customer_index.sql", INDEX)]
    )
    assert [(s.version, s.name) for s in specs] == [
        (1, "0001_init.sql"),
        (2, "0002_orders_customer_index.sql"),
    ]
    assert specs[0].checksum == hashlib.sha256(INIT.encode()).hexdigest()
    assert specs[0].sql == INIT
    assert (specs[0].no_transaction, specs[1].no_transaction) == (False, True)


def test_bom_is_dropped_before_the_checksum():
    (spec,) = parse_migration_files([("0001_init.sql", b"\xef\xbb\xbf" + INIT.encode())])
    assert spec.sql == INIT
    assert spec.checksum == hashlib.sha256(INIT.encode()).hexdigest()


@pytest.mark.parametrize(
    "content", ["", "   \n\t\n", "-- nothing yet\n", "/* later */\n-- still nothing\n;\n"]
)
def test_empty_file_is_refused(content):
    assert problems_of([("0001_init.sql", INIT), ("0002_placeholder.sql", content)]) == [
        "0002_placeholder.sql: is empty (only whitespace or comments)"
    ]


def test_file_out_of_order_names_it():
    problems = problems_of(
        [
            ("0001_init.sql", INIT),
            ("0003_c.sql", "SELECT 3;"),
            ("0002_b.sql", "SELECT 2;"),
        ]
    )
    assert problems == [
        "0003_c.sql: out of order: expected version 0002 after 0001_init.sql",
        "0002_b.sql: out of order: listed after 0003_c.sql",
    ]


def test_gap_and_wrong_start_are_refused():
    assert problems_of([("0002_b.sql", "SELECT 2;")]) == [
        "0002_b.sql: out of order: the first migration must be 0001"
    ]
    assert problems_of([("0001_a.sql", "SELECT 1;"), ("0004_d.sql", "SELECT 4;")]) == [
        "0004_d.sql: out of order: expected version 0002 after 0001_a.sql"
    ]


def test_duplicate_version_is_refused():
    problems = problems_of(
        [("0001_a.sql", INIT), ("0002_b.sql", "SELECT 2;"), ("0002_c.sql", "SELECT 3;")]
    )
    assert problems == ["0002_c.sql: duplicate version 2 (also 0002_b.sql)"]


def test_every_problem_is_listed_at_once_and_is_a_validation_error():
    files = [
        ("init.sql", INIT),
        ("0001_a.sql", b"SELECT '\xff';"),
        ("0002_b.sql", "-- empty\n"),
        ("0003_c.sql", "SELECT 1;\nCOMMIT;\n"),
    ]
    with pytest.raises(ValidationError) as excinfo:
        parse_migration_files(files)
    assert excinfo.value.messages == [
        "init.sql: name must look like 0001_create_orders.sql (digits, _, .sql)",
        "0001_a.sql: is not valid UTF-8 (byte 0xff on line 1)",
        "0002_b.sql: is empty (only whitespace or comments)",
        "0003_c.sql: line 2: COMMIT controls the transaction, which the runner owns "
        "(each migration runs in its own transaction; start the file with "
        "-- opsconsole:no-transaction to run it outside one)",
    ]


def test_marker_only_counts_on_the_first_line():
    text = "CREATE TABLE t (id int);\n-- opsconsole:no-transaction\n"
    assert problems_of([("0001_a.sql", text)]) == [
        "0001_a.sql: the -- opsconsole:no-transaction marker is on line 2; "
        "it only counts on the first line"
    ]


def test_unterminated_dollar_quote_is_refused_with_its_line():
    text = "SELECT 1;\nCREATE FUNCTION f() RETURNS int AS $$\nBEGIN RETURN 1; END;\n"
    assert problems_of([("0001_f.sql", text)]) == [
        "0001_f.sql: dollar-quoted string $$ starting on line 2 is never closed"
    ]


def test_splitter_keeps_semicolons_inside_quotes_comments_and_bodies():
    text = (
        "-- a comment; not a statement end\n"
        "INSERT INTO t VALUES ('a;b', E'it\\'s;', \"odd;name\");\n"
        "/* block /* nested; */ still comment; */\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$\n"
        "BEGIN RETURN 1; END;\n"
        "$body$;\n"
        "CREATE FUNCTION g(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC\n"
        "  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n"
        "  SELECT 2;\n"
        "END;\n"
        "SELECT 'last'"
    )
    statements = split_statements(text)
    assert [s.sql.split("\n")[0][:23] for s in statements] == [
        "INSERT INTO t VALUES ('",
        "CREATE FUNCTION f() RET",
        "CREATE FUNCTION g(x int",
        "SELECT 'last'",
    ]
    # Each start points at the statement inside the file.
    for statement in statements:
        assert text[statement.start : statement.start + len(statement.sql)] == statement.sql
    assert statements[1].sql.endswith("$body$")
    assert statements[2].sql.endswith("END")


@pytest.mark.django_db
def test_specs_for_release_reads_stored_migrations_in_order():
    release = Release.objects.create(version="1.2.0", artifact_type=ArtifactType.ZIP)
    for version, name, text in [(2, "0002_index.sql", INDEX), (1, "0001_init.sql", INIT)]:
        ReleaseMigration.objects.create(
            release=release,
            version=version,
            name=name,
            sql=text,
            sha256=ReleaseMigration.checksum(text),
        )
    specs = specs_for_release(release)
    assert [(s.name, s.no_transaction) for s in specs] == [
        ("0001_init.sql", False),
        ("0002_index.sql", True),
    ]
    assert specs[1].checksum == hashlib.sha256(INDEX.encode()).hexdigest()

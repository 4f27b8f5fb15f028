"""A release's SQL migrations as files: validation at registration, and statement splitting.

Everything here is plain text work, no database: registration rejects bad files before a
single tenant sees them, and the runner uses the same splitter to run (and report on) one
statement at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from deployments.models import Release, ReleaseMigration

NO_TRANSACTION_MARKER = "-- opsconsole:no-transaction"

# 0001_init.sql, 0002_add_orders_index.sql: the number is the version, the rest a label.
FILE_NAME_RE = re.compile(r"^(?P<version>\d{4,})_(?P<label>[A-Za-z0-9][A-Za-z0-9_\-]*)\.sql$")

# Statements that would end the runner's transaction half-way through a migration.
_TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "END", "ROLLBACK", "ABORT", "START"}


@dataclass(frozen=True)
class MigrationSpec:
    """One migration as the runner needs it (built from files or from ReleaseMigration)."""

    version: int
    name: str
    sql: str
    checksum: str
    no_transaction: bool

    @classmethod
    def from_text(cls, *, version: int, name: str, sql: str) -> MigrationSpec:
        return cls(
            version=version,
            name=name,
            sql=sql,
            checksum=ReleaseMigration.checksum(sql),
            no_transaction=has_no_transaction_marker(sql),
        )


@dataclass(frozen=True)
class FileProblem:
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


class MigrationFilesError(ValidationError):
    """Every problem found in a release's migration files, each naming its file."""

    def __init__(self, problems: Sequence[FileProblem]):
        self.problems = list(problems)
        super().__init__([str(p) for p in self.problems], code="invalid_migrations")


@dataclass(frozen=True)
class Statement:
    sql: str
    start: int  # offset of sql[0] in the file's text (characters, 0-based)


class UnterminatedSql(ValueError):
    def __init__(self, what: str, offset: int):
        super().__init__(f"unterminated {what}")
        self.what = what
        self.offset = offset


def has_no_transaction_marker(sql: str) -> bool:
    first_line = sql.split("\n", 1)[0]
    return first_line.strip() == NO_TRANSACTION_MARKER


def line_and_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a 0-based character offset."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def split_statements(sql: str) -> list[Statement]:
    """Split SQL text into statements at top-level semicolons, as psql does.

    Knows enough of PostgreSQL's lexer for migrations: '...' and E'...' strings, "..."
    identifiers, $tag$...$tag$ bodies, -- and nested /* */ comments, and BEGIN ATOMIC ...
    END function bodies. Statements holding only comments are dropped. Raises
    UnterminatedSql when a string, identifier, dollar quote or comment never ends.
    """
    statements: list[Statement] = []
    n = len(sql)
    i = 0
    code_start: int | None = None  # where the current statement's first token is
    atomic_depth = 0
    prev_word = ""

    def close_segment(end: int) -> None:
        if code_start is not None:
            statements.append(Statement(sql=sql[code_start:end].rstrip(), start=code_start))

    while i < n:
        ch = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if ch == "-" and nxt == "-":
            end = sql.find("\n", i)
            i = n if end == -1 else end + 1
            continue
        if ch == "/" and nxt == "*":
            i = _skip_block_comment(sql, i)
            continue
        if ch.isspace():
            i += 1
            continue
        if ch == ";" and atomic_depth == 0:
            close_segment(i)
            i += 1
            code_start = None
            prev_word = ""
            continue
        if code_start is None:
            code_start = i
        if ch == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _is_ident(sql[i - 2]))
            i = _skip_quoted(sql, i, "'", backslash=escapes, what="string")
        elif ch == '"':
            i = _skip_quoted(sql, i, '"', backslash=False, what="quoted identifier")
        elif ch == "$" and (i == 0 or not _is_ident(sql[i - 1])):
            match = _DOLLAR_TAG_RE.match(sql, i)
            if match:
                tag = match.group(0)
                close = sql.find(tag, match.end())
                if close == -1:
                    raise UnterminatedSql(f"dollar-quoted string {tag}", i)
                i = close + len(tag)
            else:
                i += 1
        elif ch.isalpha() or ch == "_":
            j = i + 1
            while j < n and (_is_ident(sql[j])):
                j += 1
            word = sql[i:j].upper()
            # SQL-standard function bodies (BEGIN ATOMIC ... END) hold bare semicolons.
            if (word == "ATOMIC" and prev_word == "BEGIN") or (atomic_depth and word == "CASE"):
                atomic_depth += 1
            elif atomic_depth and word == "END":
                atomic_depth -= 1
            prev_word = word
            i = j
        else:
            i += 1
    close_segment(n)
    return statements


_DOLLAR_TAG_RE = re.compile(r"\$(?:[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")


def _is_ident(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


def _skip_block_comment(sql: str, i: int) -> int:
    depth = 0
    start = i
    n = len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise UnterminatedSql("/* comment", start)


def _skip_quoted(sql: str, i: int, quote: str, *, backslash: bool, what: str) -> int:
    start = i
    i += 1
    n = len(sql)
    while i < n:
        ch = sql[i]
        if backslash and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < n and sql[i + 1] == quote:  # doubled quote stands for itself
                i += 2
                continue
            return i + 1
        i += 1
    raise UnterminatedSql(what, start)


def _decode(name: str, content: bytes | str) -> tuple[str | None, str | None]:
    """(text, problem): the file as text without a BOM, or why it cannot be one."""
    if isinstance(content, str):
        text = content
    else:
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = content.count(b"\n", 0, exc.start) + 1
            return None, f"is not valid UTF-8 (byte 0x{content[exc.start]:02x} on line {line})"
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        return None, "contains a NUL character, which PostgreSQL text cannot hold"
    return text, None


def _content_problems(text: str) -> list[str]:
    problems: list[str] = []
    try:
        statements = split_statements(text)
    except UnterminatedSql as exc:
        line, _ = line_and_column(text, exc.offset)
        return [f"{exc.what} starting on line {line} is never closed"]
    if not statements:
        return ["is empty (only whitespace or comments)"]
    marker_line = next(
        (
            number
            for number, line in enumerate(text.split("\n"), start=1)
            if line.strip() == NO_TRANSACTION_MARKER
        ),
        None,
    )
    if marker_line is not None and marker_line != 1:
        problems.append(
            f"the {NO_TRANSACTION_MARKER} marker is on line {marker_line}; "
            "it only counts on the first line"
        )
    for statement in statements:
        words = statement.sql.split(None, 2)
        first = words[0].upper().rstrip(";") if words else ""
        second = words[1].upper() if len(words) > 1 else ""
        if first in _TRANSACTION_CONTROL and not (first == "ROLLBACK" and second == "TO"):
            if first == "START" and second != "TRANSACTION":
                continue
            line, _ = line_and_column(text, statement.start)
            problems.append(
                f"line {line}: {first} controls the transaction, which the runner owns "
                "(each migration runs in its own transaction; start the file with "
                f"{NO_TRANSACTION_MARKER} to run it outside one)"
            )
    return problems


def parse_migration_files(files: Iterable[tuple[str, bytes | str]]) -> list[MigrationSpec]:
    """Validate a release's migration files, given in order as (file name, content).

    Rules: names like ``0001_init.sql``; versions start at 1 and go up by one in the order
    given; no version twice; no empty file (comments only counts as empty); UTF-8 text;
    no transaction control statements. Raises MigrationFilesError listing every problem,
    each naming its file; otherwise returns the specs in order. Callers with an unordered
    set of files (a folder upload) sort them by name first.
    """
    problems: list[FileProblem] = []
    specs: list[MigrationSpec] = []
    seen: dict[int, str] = {}
    expected = 1
    previous = ""
    for name, content in files:
        match = FILE_NAME_RE.match(name)
        if not match:
            problems.append(
                FileProblem(name, "name must look like 0001_create_orders.sql (digits, _, .sql)")
            )
            continue
        version = int(match.group("version"))
        if version in seen:
            problems.append(
                FileProblem(name, f"duplicate version {version} (also {seen[version]})")
            )
            continue
        seen[version] = name
        if version != expected:
            if version == 0:
                why = "versions start at 0001"
            elif version < expected:
                why = f"out of order: listed after {previous}"
            elif expected == 1:
                why = "out of order: the first migration must be 0001"
            else:
                why = f"out of order: expected version {expected:04d} after {previous}"
            problems.append(FileProblem(name, why))
        expected = max(expected, version + 1)
        previous = name
        text, problem = _decode(name, content)
        if problem or text is None:
            problems.append(FileProblem(name, problem or "unreadable"))
            continue
        problems.extend(FileProblem(name, message) for message in _content_problems(text))
        specs.append(MigrationSpec.from_text(version=version, name=name, sql=text))
    if problems:
        raise MigrationFilesError(problems)
    return specs


def specs_for_release(release: Release) -> list[MigrationSpec]:
    """The release's stored migrations, in version order, ready for the runner."""
    return [
        MigrationSpec(
            version=m.version,
            name=m.name,
            sql=m.sql,
            checksum=m.sha256,
            no_transaction=has_no_transaction_marker(m.sql),
        )
        for m in release.migrations.order_by("version")
    ]

"""Schemas shared by several routers."""

from __future__ import annotations

from ninja import Schema


class ProblemOut(Schema):
    field: str | None
    message: str


class ErrorOut(Schema):
    message: str
    field: str | None = None
    problems: list[ProblemOut] = []


class JobRef(Schema):
    id: int
    kind: str
    status: str
    url: str


# Every operation may answer these: text the console cannot store (400), no or a bad
# token (401), not found or not yours to see (404), a request that does not match the
# schema (422), the token's rate limit (429).
_COMMON = (400, 401, 404, 422, 429)


def answers(ok: dict[int, object], *errors: int) -> dict[int, object]:
    """An operation's documented answers: its own, the errors it names, and the common."""
    return {**ok, **{code: ErrorOut for code in (*errors, *_COMMON)}}

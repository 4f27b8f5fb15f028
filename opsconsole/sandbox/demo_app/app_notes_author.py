"""The demo tenant app as of 2026.12.0-demo: notes with an optional author.

Migration 0002 adds ``notes.author`` as a nullable column (expand/contract: 2026.11.0-demo
keeps working on the new shape, so rolling back only moves the alias). Everything else is
as in 2026.11.0-demo, including the unhandled error on a note over 1,000 characters.

    GET  /healthz   200 with the release and the database's answer; 500 when it is down
    GET  /notes     the newest 20 notes, with their authors
    POST /notes     {"text": "...", "author": "..."} adds one (201); author is optional
"""

from __future__ import annotations

import db
import web


def healthz(request: web.Request) -> tuple[int, dict]:
    try:
        db.run("SELECT 1")
    except db.Unavailable as exc:
        return 500, {"ok": False, "release": web.RELEASE, "database": str(exc)}
    return 200, {"ok": True, "release": web.RELEASE, "database": "answered"}


def list_notes(request: web.Request) -> tuple[int, dict]:
    rows = db.run("SELECT id, text, author, created_at FROM notes ORDER BY id DESC LIMIT 20")
    notes = [
        {"id": i, "text": text, "author": author, "created_at": at.isoformat()}
        for i, text, author, at in rows
    ]
    return 200, {"notes": notes}


def add_note(request: web.Request) -> tuple[int, dict]:
    data = request.json()
    text, author = data.get("text"), data.get("author")
    if not isinstance(text, str) or not text.strip():
        raise web.BadRequest('a note needs "text", a non-empty string')
    if author is not None and not isinstance(author, str):
        raise web.BadRequest('"author" must be a string when given')
    [[note_id, at]] = db.run(
        "INSERT INTO notes (text, author) VALUES (:text, :author) RETURNING id, created_at",
        retry=False,
        text=text,
        author=author,
    )
    return 201, {"id": note_id, "text": text, "author": author, "created_at": at.isoformat()}


ROUTES = {
    ("GET", "/healthz"): healthz,
    ("GET", "/notes"): list_notes,
    ("POST", "/notes"): add_note,
}


def handler(event, context):
    return web.serve(ROUTES, event)

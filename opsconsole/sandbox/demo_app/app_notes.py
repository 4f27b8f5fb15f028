"""The demo tenant app as of 2026.11.0-demo: notes in the tenant's own database.

    GET  /healthz   200 with the release and the database's answer; 500 when it is down
    GET  /notes     the newest 20 notes
    POST /notes     {"text": "..."} adds one (201)

The notes table comes from the release's migration 0001. Its check on the length of a
note is the only one: a note over 1,000 characters makes the database refuse the insert,
and the app does not catch that, so it fails as an unhandled error (the function's
Errors metric, a 500 from the API, a traceback in the log). The demo traffic sends one
now and then, so the health pages show real errors too.
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
    rows = db.run("SELECT id, text, created_at FROM notes ORDER BY id DESC LIMIT 20")
    notes = [{"id": i, "text": text, "created_at": at.isoformat()} for i, text, at in rows]
    return 200, {"notes": notes}


def add_note(request: web.Request) -> tuple[int, dict]:
    text = request.json().get("text")
    if not isinstance(text, str) or not text.strip():
        raise web.BadRequest('a note needs "text", a non-empty string')
    [[note_id, at]] = db.run(
        "INSERT INTO notes (text) VALUES (:text) RETURNING id, created_at",
        retry=False,
        text=text,
    )
    return 201, {"id": note_id, "text": text, "created_at": at.isoformat()}


ROUTES = {
    ("GET", "/healthz"): healthz,
    ("GET", "/notes"): list_notes,
    ("POST", "/notes"): add_note,
}


def handler(event, context):
    return web.serve(ROUTES, event)

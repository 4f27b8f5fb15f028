"""The demo tenant app as of 2026.12.1-demo-broken: a release that must not reach traffic.

Its notes routes are 2026.12.0-demo's, but its health route refuses: the release expects a
search index that no migration creates, and says so. The console checks this route on the
new version before the alias moves, so the rollout stops at its canary and every tenant
keeps serving the release it had.
"""

from __future__ import annotations

import app_notes_author
import web


def healthz(request: web.Request) -> tuple[int, dict]:
    return 500, {
        "ok": False,
        "release": web.RELEASE,
        "error": "notes search index missing: this release needs migration 0003, "
        "which it does not ship; refusing traffic",
    }


ROUTES = {**app_notes_author.ROUTES, ("GET", "/healthz"): healthz}


def handler(event, context):
    return web.serve(ROUTES, event)

"""Reachability of what the console depends on: its database, the broker, AWS."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connection


def _timed(check) -> dict[str, Any]:
    started = time.monotonic()
    try:
        detail = check()
        result: dict[str, Any] = {"ok": True}
        if detail:
            result["detail"] = detail
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def check_database() -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()
    return ""


def check_broker() -> str:
    from opsconsole.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return conn.transport_cls if isinstance(conn.transport_cls, str) else ""


def check_aws() -> str:
    from opsconsole.aws import sts

    identity = sts.get_caller_identity(fast=True)
    return f"account {identity['account']}"


def health_report() -> dict[str, Any]:
    checks = {
        "database": _timed(check_database),
        "broker": _timed(check_broker),
        "aws": _timed(check_aws),
    }
    return {
        "status": "ok" if all(c["ok"] for c in checks.values()) else "down",
        "sandbox": settings.SANDBOX,
        "checks": checks,
    }


# The broker banner on every page must not cost a broker round trip per request.
_broker_cache: dict[str, Any] = {"at": 0.0, "ok": True, "error": ""}
_BROKER_CACHE_SECONDS = 15


def broker_status_cached() -> dict[str, Any]:
    now = time.monotonic()
    if now - _broker_cache["at"] > _BROKER_CACHE_SECONDS:
        result = _timed(check_broker)
        _broker_cache.update(at=now, ok=result["ok"], error=result.get("error", ""))
    return {"ok": _broker_cache["ok"], "error": _broker_cache["error"]}

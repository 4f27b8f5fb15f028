"""Where a database endpoint really is.

moto hands out RDS instance, cluster and proxy endpoints that are made-up host names
(``tenant-x.abc123.us-east-1.rds.amazonaws.com``); nothing answers there. The sandbox runs
one real PostgreSQL server instead, so every endpoint points at it. In production the
endpoint is used as AWS gave it. Code that connects to a tenant database asks here first.
"""

from __future__ import annotations

from django.conf import settings


def database_address(host: str, port: int) -> tuple[str, int]:
    """(host, port) to connect to for an RDS or RDS Proxy endpoint."""
    if settings.SANDBOX:
        return settings.SANDBOX_PG_HOST, settings.SANDBOX_PG_PORT
    return host, port

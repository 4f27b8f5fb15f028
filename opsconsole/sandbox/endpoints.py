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


def sandbox_server_connection(*, application_name: str = "opsconsole-sandbox"):
    """An autocommit connection to the sandbox's PostgreSQL server itself (database
    ``postgres``, as SANDBOX_PG_USER): what RDS emulation, tests and benchmarks use to
    create and drop tenant databases. Never for a production endpoint."""
    import psycopg

    kwargs: dict = {}
    default = settings.DATABASES["default"]
    # The console's own credentials open the local server when it runs as the same user.
    if (default.get("USER") or "") == settings.SANDBOX_PG_USER and default.get("PASSWORD"):
        kwargs["password"] = default["PASSWORD"]
    return psycopg.connect(
        host=settings.SANDBOX_PG_HOST,
        port=settings.SANDBOX_PG_PORT,
        user=settings.SANDBOX_PG_USER,
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
        application_name=application_name,
        **kwargs,
    )

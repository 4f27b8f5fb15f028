"""The sandbox's local PostgreSQL server itself, for tests and benchmarks.

The console never comes here: it reaches every database at the endpoint AWS reports (the
local AWS reports this server's host and port for every RDS instance, cluster and proxy).
"""

from __future__ import annotations

from django.conf import settings


def sandbox_server_connection(*, application_name: str = "opsconsole-sandbox"):
    """An autocommit connection to the sandbox's PostgreSQL server itself (database
    ``postgres``, as SANDBOX_PG_USER): what tests and benchmarks use to create and drop
    databases. Never for a production endpoint."""
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

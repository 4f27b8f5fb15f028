"""An in-process moto account whose shared RDS instance is the local PostgreSQL server.

In-process moto (the ``aws`` fixture) reports RDS endpoints that are made-up host names
nothing answers at. The console reads the shared instance's address from its master
secret, as in a real account, so pointing that secret at the local server gives
shared-instance tenants real databases. The local AWS server (``live_aws``) needs none of
this: it reports real endpoints, for dedicated instances and clusters too.
"""

from __future__ import annotations

from django.conf import settings


def shared_instance_on_local_server(region: str | None = None) -> dict:
    """Point the shared instance's master secret at the local server; returns its value."""
    from opsconsole.aws import secrets

    secret_id = settings.BASELINE["shared_db_master_secret"]
    value = secrets.get_secret_json(secret_id=secret_id, region=region)
    value = {**value, "host": settings.SANDBOX_PG_HOST, "port": settings.SANDBOX_PG_PORT}
    secrets.put_secret_json(secret_id=secret_id, value=value, region=region)
    return value


def seed_in_process(*, region: str | None = None) -> dict:
    """The sandbox seed in an in-process moto account, its shared instance on the local
    server. Returns the seed's summary."""
    from opsconsole.sandbox.seed import sandbox_seed

    summary = sandbox_seed(region=region)
    shared_instance_on_local_server(region)
    return summary

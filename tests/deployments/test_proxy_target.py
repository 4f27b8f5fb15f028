"""Migrations through an RDS Proxy take the connection path production takes: the proxy's
host name and port from the tenant's records, the rest from its secret (no mapping of
endpoints anywhere)."""

from __future__ import annotations

import json

import boto3
from django.conf import settings

from deployments.migration_runner import migrate_database
from deployments.tenant_release import database_target
from tenants import resources
from tenants.models import Tenant

from .conftest import spec


def test_migrations_reach_the_database_by_the_proxy_host_name(aws, tenant_db):
    # The secret names a host nothing answers at: only the proxy's address works, as when
    # the worker sits outside the VPC and reaches the database through the proxy.
    secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="t-proxy/db",
        SecretString=json.dumps(
            {
                "host": "db-behind-the-proxy.invalid",
                "port": 6543,
                "dbname": tenant_db.dbname,
                "username": tenant_db.user,
                "password": "unused-with-trust-auth",
            }
        ),
    )
    tenant = Tenant.objects.create(
        name="Proxy", slug="t-proxy", region="us-east-1", use_rds_proxy=True
    )
    resources.record(tenant, kind="db_secret", name="t-proxy/db", arn=secret["ARN"])
    # As the proxy step records it: "endpoint" is text for people, host and port apart.
    resources.record(
        tenant,
        kind="db_proxy",
        name="opsconsole-t-proxy",
        identifier="opsconsole-t-proxy",
        details={
            "endpoint": f"localhost:{settings.SANDBOX_PG_PORT}",
            "host": "localhost",
            "port": settings.SANDBOX_PG_PORT,
        },
    )
    target = database_target(tenant)
    assert (target.proxy_host, target.proxy_port) == ("localhost", settings.SANDBOX_PG_PORT)
    result = migrate_database(
        target=target,
        migrations=[spec(1, "notes", "CREATE TABLE notes (id bigint PRIMARY KEY);")],
        release_version="1.0.0",
    )
    assert result.ok, result.error
    assert [m.name for m in result.applied] == ["0001_notes.sql"]

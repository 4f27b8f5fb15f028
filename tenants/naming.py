"""Deterministic AWS names for a tenant's resources, all derived from its slug.

A slug has at most 40 characters, so every name below fits its AWS limit (RDS identifiers
63, Lambda function and IAM role names 64, PostgreSQL identifiers 63).
"""

from __future__ import annotations

import re

PREFIX = "opsconsole"
SLUG_RE = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,39}\Z")  # \Z: no final newline
# Slugs that would collide with the console's own names or read as something else.
RESERVED_SLUGS = {
    "admin",
    "api",
    "attachments",
    "aws",
    "console",
    "default",
    "internal",
    "new",
    "notifications",
    "opsconsole",
    "shared",
    "sandbox",
    "static",
    "system",
    "test",
    "www",
    "root",
    "postgres",
    "template0",
    "template1",
}


def resource_prefix(slug: str) -> str:
    return f"{PREFIX}-{slug}"


def function_name(slug: str) -> str:
    return resource_prefix(slug)


def role_name(slug: str) -> str:
    return resource_prefix(slug)


def log_group_name(slug: str) -> str:
    return f"/aws/lambda/{function_name(slug)}"


def db_secret_name(slug: str) -> str:
    return f"{PREFIX}/tenants/{slug}/db"


def env_secret_name(slug: str) -> str:
    return f"{PREFIX}/tenants/{slug}/env"


def db_name(slug: str) -> str:
    # PostgreSQL identifiers: underscores, not hyphens, so no quoting is ever needed.
    return f"tenant_{slug.replace('-', '_')}"


def db_user(slug: str) -> str:
    return db_name(slug)


def db_instance_id(slug: str) -> str:
    return resource_prefix(slug)


def db_cluster_id(slug: str) -> str:
    return resource_prefix(slug)


def db_proxy_name(slug: str) -> str:
    return resource_prefix(slug)


def api_name(slug: str) -> str:
    return resource_prefix(slug)


# Every alarm a tenant can have (api-5xx once its HTTP API exists).
ALARM_KINDS = ("errors", "throttles", "api-5xx", "db-cpu", "db-connections")


def alarm_name(slug: str, what: str) -> str:
    return f"{resource_prefix(slug)}-{what}"


ALIAS = "live"


def tags(slug: str) -> dict[str, str]:
    return {"Tenant": slug, "ManagedBy": PREFIX}

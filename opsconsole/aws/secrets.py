"""Secrets Manager. Secret values pass through here and nowhere else is told them."""

from __future__ import annotations

import json

from opsconsole.aws.clients import call, client, tag_list
from opsconsole.aws.errors import AwsNotFound


def describe_secret(*, secret_id: str, region: str | None = None) -> dict | None:
    try:
        return call(client("secretsmanager", region).describe_secret, SecretId=secret_id)
    except AwsNotFound:
        return None


def get_secret_json(*, secret_id: str, region: str | None = None) -> dict:
    resp = call(client("secretsmanager", region).get_secret_value, SecretId=secret_id)
    return json.loads(resp["SecretString"])


def create_secret_json(
    *,
    name: str,
    value: dict,
    description: str,
    tags: dict[str, str],
    region: str | None = None,
) -> dict:
    """Create a secret holding ``value`` as JSON. Returns ``{"ARN", "Name", "VersionId"}``."""
    resp = call(
        client("secretsmanager", region).create_secret,
        Name=name,
        Description=description,
        SecretString=json.dumps(value),
        Tags=tag_list(tags),
    )
    return {"ARN": resp["ARN"], "Name": resp["Name"], "VersionId": resp.get("VersionId", "")}


def put_secret_json(*, secret_id: str, value: dict, region: str | None = None) -> str:
    """Store ``value`` as the secret's new current version; returns the version id."""
    resp = call(
        client("secretsmanager", region).put_secret_value,
        SecretId=secret_id,
        SecretString=json.dumps(value),
    )
    return resp.get("VersionId", "")


def restore_secret(*, secret_id: str, region: str | None = None) -> None:
    """Cancel a scheduled deletion (a secret in its recovery window cannot be re-created)."""
    call(client("secretsmanager", region).restore_secret, SecretId=secret_id)


def read_secret_json(*, secret_id: str, region: str | None = None) -> dict | None:
    """The secret's current value with its ARN, in one call: ``{"ARN", "Name", "VersionId",
    "value"}``; None when there is no such secret.

    A secret scheduled for deletion raises AwsError (``InvalidRequestException``): see
    ``describe_secret`` for its ``DeletedDate`` and ``restore_secret``.
    """
    try:
        resp = call(client("secretsmanager", region).get_secret_value, SecretId=secret_id)
    except AwsNotFound:
        return None
    return {
        "ARN": resp["ARN"],
        "Name": resp["Name"],
        "VersionId": resp.get("VersionId", ""),
        "value": json.loads(resp["SecretString"]),
    }


def delete_secret(
    *, secret_id: str, recovery_window_days: int, region: str | None = None
) -> str | None:
    """Schedule deletion after a recovery window (7 to 30 days; ``restore_secret`` undoes
    it until then). Returns the deletion date (ISO 8601), None when there was no secret."""
    try:
        resp = call(
            client("secretsmanager", region).delete_secret,
            SecretId=secret_id,
            RecoveryWindowInDays=recovery_window_days,
        )
    except AwsNotFound:
        return None
    deletion = resp.get("DeletionDate")
    return deletion.isoformat() if deletion else ""

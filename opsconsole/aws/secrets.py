"""Secrets Manager. Secret values pass through here and nowhere else is told them."""

from __future__ import annotations

import json

from opsconsole.aws.clients import aws_errors, call, client, tag_list
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


# --- staged versions (a password rotation) ----------------------------------------------


def stage_pending_json(*, secret_id: str, value: dict, token: str, region: str | None = None):
    """Store ``value`` as a new version labelled AWSPENDING only: readers keep getting
    AWSCURRENT. ``token`` (32..64 characters) names the version, so a retried call cannot
    make a second one. Returns the version id (the token)."""
    resp = call(
        client("secretsmanager", region).put_secret_value,
        SecretId=secret_id,
        ClientRequestToken=token,
        SecretString=json.dumps(value),
        VersionStages=["AWSPENDING"],
    )
    return resp.get("VersionId", token)


def read_version_json(*, secret_id: str, version_id: str, region: str | None = None):
    """One version's value (None when the secret has no such version)."""
    try:
        resp = call(
            client("secretsmanager", region).get_secret_value,
            SecretId=secret_id,
            VersionId=version_id,
        )
    except AwsNotFound:
        return None
    return json.loads(resp["SecretString"])


def current_version(described: dict) -> str:
    """The id of the version labelled AWSCURRENT in a DescribeSecret or ListSecrets entry."""
    stages = described.get("VersionIdsToStages") or described.get("SecretVersionsToStages") or {}
    return next((v for v, labels in stages.items() if "AWSCURRENT" in labels), "")


def promote_version(*, secret_id: str, version_id: str, region: str | None = None) -> bool:
    """Make ``version_id`` AWSCURRENT (the old one becomes AWSPREVIOUS) and drop its
    AWSPENDING label. False when it already was current (a retried step)."""
    sm = client("secretsmanager", region)
    described = call(sm.describe_secret, SecretId=secret_id)
    current = current_version(described)
    moved = current != version_id
    if moved:
        call(
            sm.update_secret_version_stage,
            SecretId=secret_id,
            VersionStage="AWSCURRENT",
            MoveToVersionId=version_id,
            RemoveFromVersionId=current,
        )
    if "AWSPENDING" in (described.get("VersionIdsToStages") or {}).get(version_id, []):
        call(
            sm.update_secret_version_stage,
            SecretId=secret_id,
            VersionStage="AWSPENDING",
            RemoveFromVersionId=version_id,
        )
    return moved


def current_versions(*, name_prefix: str, region: str | None = None) -> dict[str, str]:
    """Secret name -> its AWSCURRENT version id, for every secret whose name starts with
    ``name_prefix``: 100 secrets per ListSecrets call, however many there are."""
    paginator = client("secretsmanager", region).get_paginator("list_secrets")
    out: dict[str, str] = {}
    with aws_errors():
        for page in paginator.paginate(
            Filters=[{"Key": "name", "Values": [name_prefix]}], MaxResults=100
        ):
            for entry in page.get("SecretList", []):
                out[entry["Name"]] = current_version(entry)
    return out

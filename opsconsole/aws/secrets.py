"""Secrets Manager. Secret values pass through here and nowhere else is told them."""

from __future__ import annotations

import json

from opsconsole.aws.clients import call, client
from opsconsole.aws.errors import AwsNotFound


def describe_secret(*, secret_id: str, region: str | None = None) -> dict | None:
    try:
        return call(client("secretsmanager", region).describe_secret, SecretId=secret_id)
    except AwsNotFound:
        return None


def get_secret_json(*, secret_id: str, region: str | None = None) -> dict:
    resp = call(client("secretsmanager", region).get_secret_value, SecretId=secret_id)
    return json.loads(resp["SecretString"])

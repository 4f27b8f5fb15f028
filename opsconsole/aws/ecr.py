"""ECR: release image repositories."""

from __future__ import annotations

from opsconsole.aws.clients import call, client
from opsconsole.aws.errors import AwsNotFound


def describe_repository(*, name: str, region: str | None = None) -> dict | None:
    try:
        resp = call(client("ecr", region).describe_repositories, repositoryNames=[name])
    except AwsNotFound:
        return None
    repos = resp.get("repositories", [])
    return repos[0] if repos else None

"""IAM: one role per tenant function, with an inline least-privilege policy."""

from __future__ import annotations

import json
from urllib.parse import unquote

from opsconsole.aws.clients import call, client, tag_list
from opsconsole.aws.errors import AwsNotFound


def trust_policy(service: str) -> dict:
    """Who may assume a role: one AWS service (lambda.amazonaws.com, rds.amazonaws.com)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


LAMBDA_TRUST_POLICY = trust_policy("lambda.amazonaws.com")


def get_role(*, name: str) -> dict | None:
    try:
        return call(client("iam").get_role, RoleName=name)["Role"]
    except AwsNotFound:
        return None


def create_role(
    *,
    name: str,
    tags: dict[str, str],
    description: str = "",
    service: str = "lambda.amazonaws.com",
) -> dict:
    return call(
        client("iam").create_role,
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(trust_policy(service)),
        Description=description,
        Tags=tag_list(tags),
    )["Role"]


def get_role_policy(*, role: str, policy_name: str) -> dict | None:
    try:
        resp = call(client("iam").get_role_policy, RoleName=role, PolicyName=policy_name)
    except AwsNotFound:
        return None
    document = resp["PolicyDocument"]
    # IAM returns the document URL-encoded as text (boto3 decodes JSON only sometimes).
    if isinstance(document, str):
        document = json.loads(unquote(document))
    return document


def put_role_policy(*, role: str, policy_name: str, document: dict) -> None:
    call(
        client("iam").put_role_policy,
        RoleName=role,
        PolicyName=policy_name,
        PolicyDocument=json.dumps(document, sort_keys=True),
    )


def list_attached_policy_arns(*, role: str) -> list[str]:
    resp = call(client("iam").list_attached_role_policies, RoleName=role)
    return [p["PolicyArn"] for p in resp.get("AttachedPolicies", [])]


def attach_role_policy(*, role: str, policy_arn: str) -> None:
    call(client("iam").attach_role_policy, RoleName=role, PolicyArn=policy_arn)


def delete_role(*, name: str) -> bool:
    """Delete the role with its inline and attached policies. False when it was not there."""
    iam = client("iam")
    try:
        for arn in list_attached_policy_arns(role=name):
            call(iam.detach_role_policy, RoleName=name, PolicyArn=arn)
        for policy in call(iam.list_role_policies, RoleName=name).get("PolicyNames", []):
            call(iam.delete_role_policy, RoleName=name, PolicyName=policy)
        call(iam.delete_role, RoleName=name)
    except AwsNotFound:
        return False
    return True

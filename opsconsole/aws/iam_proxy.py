"""IAM for RDS Proxy: the role a tenant's proxy assumes to read its database secret.

``opsconsole.aws.iam`` builds Lambda roles (its trust policy names Lambda); a proxy's role
must trust ``rds.amazonaws.com`` instead. Reading, policy and deletion calls are shared
with that module.
"""

from __future__ import annotations

from opsconsole.aws.iam import create_role, get_role, get_role_policy, put_role_policy, trust_policy

__all__ = [
    "RDS_TRUST_POLICY",
    "create_proxy_role",
    "get_role",
    "get_role_policy",
    "proxy_secret_policy",
    "put_role_policy",
]

RDS_TRUST_POLICY = trust_policy("rds.amazonaws.com")


def create_proxy_role(*, name: str, tags: dict[str, str], description: str = "") -> dict:
    return create_role(name=name, tags=tags, description=description, service="rds.amazonaws.com")


def proxy_secret_policy(*, secret_arn: str, region: str) -> dict:
    """Read this one secret, and decrypt it only through Secrets Manager in its region."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadTenantDatabaseSecret",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": secret_arn,
            },
            {
                "Sid": "DecryptThroughSecretsManager",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}
                },
            },
        ],
    }

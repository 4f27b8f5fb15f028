"""The AWS accounts tenants live in (cells), besides the console's own.

The console's own account (the credentials it runs with) is implicit: a tenant without an
account lives there, and it needs no row. Another account is reached through a role in it
that trusts the console, with an external id (docs/accounts.md).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

# The console's own account in forms, pages and the API; no row may take the name.
DEFAULT_NAME = "default"

ACCOUNT_ID_RE = r"^\d{12}$"
# arn:<partition>:iam::<account>:role/<path/><name> (IAM's own limits on the characters).
ROLE_ARN_RE = r"^arn:aws(?:-[a-z]+)*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$"
# sts:ExternalId: 2 to 1224 characters of [\w+=,.@:/-].
EXTERNAL_ID_RE = r"^[\w+=,.@:/-]{2,1224}$"


def new_external_id() -> str:
    """An external id nobody else would choose for this role (it is not a secret: AWS's
    model is that it tells the customer's trust policy this console from other callers)."""
    return f"opsconsole-{secrets.token_hex(16)}"


class AwsAccount(models.Model):
    name = models.SlugField(
        max_length=40,
        unique=True,
        help_text="How the console names the account (a cell): lowercase letters, digits and "
        "hyphens. It cannot change.",
    )
    account_id = models.CharField(
        "Account id",
        max_length=12,
        unique=True,
        validators=[RegexValidator(ACCOUNT_ID_RE, "An AWS account id is 12 digits.")],
    )
    role_arn = models.CharField(
        "Role ARN",
        max_length=2048,
        validators=[
            RegexValidator(ROLE_ARN_RE, "An IAM role ARN: arn:aws:iam::<account id>:role/<name>.")
        ],
        help_text="The role the console assumes in the account (its trust policy names the "
        "console's principal and requires the external id).",
    )
    external_id = models.CharField(
        "External id",
        max_length=1224,
        validators=[
            RegexValidator(
                EXTERNAL_ID_RE, "2 to 1224 letters, digits and the characters + = , . @ : / - _"
            )
        ],
    )
    # Regions where tenants of the account may live (a subset of OPSCONSOLE_REGIONS).
    regions = models.JSONField(default=list)
    description = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "AWS account"

    def __str__(self) -> str:
        return self.name

    def lists_region(self, region: str) -> bool:
        return region in (self.regions or [])

from __future__ import annotations

import re

from django import forms
from django.conf import settings

from opsconsole.awsaccounts.models import DEFAULT_NAME, ROLE_ARN_RE, AwsAccount


class AwsAccountForm(forms.ModelForm):
    regions = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        help_text="Where tenants of this account may live. The console checks its baseline "
        "in each.",
    )

    class Meta:
        model = AwsAccount
        fields = ["name", "account_id", "role_arn", "external_id", "regions", "description"]
        help_texts = {
            "external_id": "What the role's trust policy requires as sts:ExternalId. Leave it "
            "empty and the console makes one; it is shown on the account's page (an external "
            "id is not a secret).",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["regions"].choices = [(r, r) for r in settings.OPSCONSOLE_REGIONS]
        self.fields["external_id"].required = False
        self.fields["account_id"].widget.attrs.update(inputmode="numeric", autocomplete="off")
        if self.instance.pk:
            # Every tenant's resources are in that account under that name: neither moves.
            for name in ("name", "account_id"):
                self.fields[name].disabled = True
                self.fields[name].help_text = "It cannot change: tenants live in it."

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if name == DEFAULT_NAME:
            raise forms.ValidationError(
                f"{DEFAULT_NAME!r} is the console's own account; choose another name."
            )
        if name == "new":
            raise forms.ValidationError("'new' is the address of this form; choose another.")
        return name

    def clean_role_arn(self) -> str:
        return self.cleaned_data["role_arn"].strip()

    def clean_external_id(self) -> str:
        return (self.cleaned_data.get("external_id") or "").strip()

    def clean_regions(self) -> list[str]:
        regions = self.cleaned_data["regions"]
        if self.instance.pk:
            used = (
                self.instance.tenants.exclude(region__in=regions)
                .values_list("region", flat=True)
                .distinct()
            )
            if used:
                raise forms.ValidationError(
                    "Tenants of this account live in " + ", ".join(sorted(used)) + ": keep it."
                )
        return sorted(regions)

    def clean(self):
        cleaned = super().clean()
        arn, account_id = cleaned.get("role_arn"), cleaned.get("account_id")
        match = re.match(ROLE_ARN_RE, arn or "")
        if match and account_id and match.group(1) != account_id:
            self.add_error(
                "role_arn",
                f"The role is in account {match.group(1)}, not {account_id}: the console "
                "assumes a role of the account it works in.",
            )
        return cleaned

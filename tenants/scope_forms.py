"""The users pages' "Tenants this user may see" section (tenants.scope holds the rule)."""

from __future__ import annotations

import re

from django import forms

from tenants.models import Tenant, TenantScope, TenantStatus

# A tag key as tenants carry them (tenants.validation keeps keys to these characters).
_TAG = re.compile(r"^([A-Za-z0-9_.:/+-]{1,128})=(.{1,256})$")


class TenantScopeForm(forms.Form):
    """All tenants, or a chosen list and/or tag values (``team=acme``)."""

    sees = forms.ChoiceField(
        label="Tenants this user may see",
        choices=[("all", "All tenants"), ("some", "Only the tenants chosen below")],
        widget=forms.RadioSelect,
        initial="all",
        # A post without this section (a script, a page from before it) keeps the scope.
        required=False,
    )
    tenants = forms.ModelMultipleChoiceField(
        queryset=Tenant.objects.exclude(status=TenantStatus.OFFBOARDED).order_by("slug"),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 8}),
        to_field_name="slug",
        help_text="Each tenant chosen here.",
    )
    tags = forms.CharField(
        required=False,
        label="And every tenant tagged",
        help_text="key=value, comma separated, e.g. team=acme, team=globex: tenants tagged "
        "so now or later.",
    )

    @classmethod
    def for_user(cls, user, data=None, **kwargs) -> TenantScopeForm:
        scope = TenantScope.objects.filter(user=user).first() if user.pk else None
        initial = {"sees": "all"}
        if scope is not None:
            initial = {
                "sees": "some",
                "tenants": list(scope.tenants.values_list("slug", flat=True)),
                "tags": ", ".join(f"{k}={v}" for k, vs in scope.tags.items() for v in vs),
            }
        return cls(data, initial=initial, **kwargs)

    def clean_tags(self) -> dict[str, list[str]]:
        tags: dict[str, list[str]] = {}
        for part in self.cleaned_data["tags"].split(","):
            part = part.strip()
            if not part:
                continue
            match = _TAG.match(part)
            if match is None:
                raise forms.ValidationError(f"{part!r} is not key=value (e.g. team=acme).")
            key, value = match.group(1), match.group(2).strip()
            if value not in tags.setdefault(key, []):
                tags[key].append(value)
        return tags

    def given(self) -> bool:
        """False when the post did not carry the section: the scope stays as it is."""
        return bool(self.cleaned_data.get("sees"))

    def scope(self) -> tuple[list[Tenant], dict[str, list[str]]] | None:
        """None for all tenants; else (the tenants, the tags) the user is limited to."""
        if self.cleaned_data["sees"] == "all":
            return None
        return list(self.cleaned_data["tenants"]), self.cleaned_data["tags"]

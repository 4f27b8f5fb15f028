"""Onboarding and configuration from structured values (the API, ``manage.py
tenant_onboard``), through the very forms the browser uses: the same defaults, the same
validation, the same plan.

The forms take ``NAME=value`` lines for variables and tags and JSON text for overrides;
structured callers give dicts, turned into those lines here. A newline inside a name or
value would smuggle a second line past the caller's intent, so it is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tenants import plan
from tenants.forms import TenantConfigForm, TenantOnboardForm, format_pairs, release_for
from tenants.models import Tenant
from tenants.plan_contract import PlanSection, contract_sections

# Structured name -> the form field that takes it as text.
_PAIRS = {"env_vars": "env_vars_text", "secret_env": "secret_env_text", "tags": "tags_text"}


class OnboardingInputError(ValueError):
    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


@dataclass
class OnboardingPlan:
    release: Any  # the ReleaseArtifact the tenant will run, or None
    planned: list[plan.PlannedResource]
    sections: list[PlanSection]
    cost_lines: list[plan.CostLine]
    total: Decimal


def onboarding_plan(tenant: Tenant) -> OnboardingPlan:
    """What onboarding ``tenant`` (unsaved) would create and cost, for every caller."""
    artifact = release_for(tenant.desired_release)
    lines = plan.estimate_cost(tenant, artifact)
    return OnboardingPlan(
        release=artifact,
        planned=plan.planned_resources(tenant, artifact),
        sections=contract_sections(tenant, artifact),
        cost_lines=lines,
        total=plan.total_cost(lines),
    )


def _pairs(name: str, value: Any, problems: list) -> str:
    if value is None:
        return ""
    if not isinstance(value, dict):
        problems.append((name, "an object of names to values"))
        return ""
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool):
            problems.append((name, f"{key}: the value must be text"))
        elif "\n" in str(key) or "\r" in str(key) or "\n" in str(item) or "\r" in str(item):
            problems.append((name, f"{key}: names and values cannot contain line breaks"))
    return format_pairs({str(k): str(v) for k, v in value.items()})


def _form_data(form, values: dict[str, Any], problems: list) -> dict[str, Any]:
    """The form's own initial values, overlaid with ``values`` under their form names."""
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        initial = form.get_initial_for_field(field, name)
        if initial is not None:
            data[name] = initial
    for key, value in values.items():
        if key in _PAIRS:
            data[_PAIRS[key]] = _pairs(key, value, problems)
        elif key == "app_overrides":
            data["app_overrides_text"] = json.dumps(value) if value else ""
        elif key == "remove_secret_env":
            data[key] = list(value or [])
        elif key in form.fields:
            data[key] = "" if value is None else value
        else:
            problems.append((key, "not a field of this form"))
    # An unchecked checkbox is an absent key, not False.
    return {k: v for k, v in data.items() if v is not False}


def onboard_form(values: dict[str, Any]) -> TenantOnboardForm:
    """A bound onboarding form from structured values (not yet validated)."""
    problems: list[tuple[str, str]] = []
    blank = TenantOnboardForm()
    data = _form_data(blank, values, problems)
    data.pop("form_token", None)
    if values.get("form_token"):
        data["form_token"] = values["form_token"]
    if problems:
        raise OnboardingInputError(problems)
    return TenantOnboardForm(data)


def config_form(tenant: Tenant, values: dict[str, Any]) -> TenantConfigForm:
    """A bound configuration form: the tenant's current settings, changed by ``values``."""
    problems: list[tuple[str, str]] = []
    current = TenantConfigForm(instance=tenant)
    data = _form_data(current, values, problems)
    if "env_vars" not in values:
        data["env_vars_text"] = format_pairs(tenant.env_vars)
    if "app_overrides" not in values and tenant.app_overrides:
        data["app_overrides_text"] = json.dumps(tenant.app_overrides)
    if "outside_vpc" not in values and not tenant.function_in_vpc:
        data["outside_vpc"] = True
    if problems:
        raise OnboardingInputError(problems)
    return TenantConfigForm(data, instance=tenant)

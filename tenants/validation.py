"""Everything about a tenant's spec that can be wrong, checked before AWS is touched.

The forms and the API call ``tenant_problems`` with the unsaved tenant and the release it
will run; each problem names the form field it belongs to (``None``: the whole form).
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from tenants.app_settings import (
    AppSettings,
    effective_api,
    parse_overrides,
)
from tenants.app_settings import problems as schema_problems
from tenants.models import Isolation, Tenant
from tenants.release_source import ReleaseArtifact

LAMBDA_ENV_LIMIT_BYTES = 4096
# A rendered value's length when the plan cannot know it yet (an ARN, an endpoint).
_UNKNOWN_VALUE_LEN = 120


def environment_size(tenant: Tenant, app: AppSettings) -> int:
    """Lambda's measure of the environment: the JSON of all variables, in bytes (the
    console's values estimated, the tenant's exact)."""
    names = dict.fromkeys(app.environment, "x" * _UNKNOWN_VALUE_LEN)
    names.update(dict.fromkeys(app.ssm_variables, "x" * _UNKNOWN_VALUE_LEN))
    if tenant.secret_env_names:
        if app.secrets_in_environment:
            names.update(dict.fromkeys(tenant.secret_env_names, "x" * _UNKNOWN_VALUE_LEN))
        else:
            names["ENV_SECRET_ARN"] = "x" * _UNKNOWN_VALUE_LEN
    names.update({str(k): str(v) for k, v in tenant.env_vars.items()})
    return len(json.dumps(names).encode())


Problem = tuple[str | None, str]


def tenant_problems(tenant: Tenant, artifact: ReleaseArtifact | None) -> list[Problem]:
    """(field, message) for everything wrong with ``tenant`` running ``artifact``."""
    out: list[Problem] = []
    try:
        overrides = parse_overrides(tenant.app_overrides)
    except ValidationError as exc:
        return [("app_overrides_text", p) for p in schema_problems(exc)]
    if artifact is None:
        return out
    app = artifact.app_settings
    try:
        effective_api(app, overrides)
    except ValidationError as exc:
        out += [("app_overrides_text", p) for p in schema_problems(exc, prefix="api.")]
    size = environment_size(tenant, app)
    if size > LAMBDA_ENV_LIMIT_BYTES:
        out.append(
            (
                "env_vars_text",
                f"The function's environment would be about {size} bytes with the release's "
                f"variables; Lambda allows {LAMBDA_ENV_LIMIT_BYTES}. Move large values into "
                "secret variables (kept in Secrets Manager).",
            )
        )
    if artifact.package_type == "Zip" and not (overrides.runtime or artifact.runtime):
        out.append(("app_overrides_text", "a zip release needs a runtime"))
    timeout = tenant.lambda_timeout_s or artifact.timeout_s
    if artifact.health.timeout_s > timeout:
        out.append(
            (
                "lambda_timeout_s",
                f"The release's health check waits {artifact.health.timeout_s} s: the "
                f"function's timeout ({timeout} s) must be at least that.",
            )
        )
    if tenant.isolation == Isolation.NONE and app.password_in_environment:
        out.append(
            (
                "isolation",
                "The release puts the console's database password in the environment, but "
                "this tenant brings its own database: choose a database, or a release "
                "without it.",
            )
        )
    out += _module_problems(tenant, app)
    for check in _CHECKS:
        out += check(tenant, app)
    return out


# A database choice's problem starts with the choice's name: the form field it goes to.
_DATABASE_FIELDS = {
    "engine version": "db_engine_version",
    "Multi-AZ": "db_multi_az",
    "backup window": "db_backup_window",
    "maintenance window": "db_maintenance_window",
    "the backup and maintenance windows": "db_maintenance_window",
    "auto-pause": "serverless_seconds_until_auto_pause",
}


def _module_problems(tenant: Tenant, app: AppSettings) -> list[Problem]:
    """The checks of the modules that apply each setting (imported here: they import the
    models and AWS wrappers this module is kept free of)."""
    from tenants.provisioning.database_choices import database_choice_problems
    from tenants.provisioning.identity import permission_problems
    from tenants.provisioning.network import network_problems

    out: list[Problem] = [("function_in_vpc", p) for p in network_problems(tenant)]
    for problem in database_choice_problems(tenant):
        field = next(
            (f for prefix, f in _DATABASE_FIELDS.items() if problem.startswith(prefix)), None
        )
        out.append((field, problem))
    # The release's statements: nothing on the tenant's form can mend them but its choice
    # of release, so they are the form's own errors.
    out += [(None, f"The release's permissions: {p}") for p in permission_problems(tenant, app)]
    return out


# Checks owned by the modules that apply each setting: (tenant, app) -> [(field, message)].
_CHECKS: list = []


def register_check(check) -> None:
    _CHECKS.append(check)

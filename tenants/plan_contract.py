"""The plan's account of what the tenant's app will see: its function settings, every
environment variable and where its value comes from, the API's shape, and what each
choice costs in safety. Computed without AWS calls, from the tenant and its release.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tenants.app_settings import (
    DEFAULT_DB_NAMES,
    PLACEHOLDERS,
    SECRET_PLACEHOLDERS,
    AppSettings,
    effective_api,
    parse_overrides,
    template_fields,
)
from tenants.models import Isolation, Tenant
from tenants.release_source import ReleaseArtifact


@dataclass
class PlanSection:
    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)  # (what, how)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PlannedVariable:
    name: str
    source: str
    secret: bool = False


def planned_environment(tenant: Tenant, app: AppSettings) -> tuple[list[PlannedVariable], dict]:
    """Every variable the function gets and where its value comes from; and the release's
    variables left out, with why."""
    database = tenant.isolation != Isolation.NONE
    out: dict[str, PlannedVariable] = {}
    left_out: dict[str, str] = {}
    for name, template in app.environment.items():
        fields = template_fields(template)
        db_fields = {p for p in PLACEHOLDERS if p.startswith("db_")}
        if not database and (fields & db_fields or name in DEFAULT_DB_NAMES):
            left_out[name] = "the tenant brings its own database"
            continue
        if "env_secret_arn" in fields and not tenant.secret_env_names:
            left_out[name] = "the tenant has no secret variables"
            continue
        if fields:
            source = f"{template}: " + "; ".join(
                f"{{{f}}} = {PLACEHOLDERS[f]}" for f in sorted(fields)
            )
        else:
            source = f"{template!r} (the release's constant)"
        out[name] = PlannedVariable(name, source, secret=bool(fields & SECRET_PLACEHOLDERS))
    for name, parameter in app.ssm_variables.items():
        out[name] = PlannedVariable(name, f"SSM parameter {parameter} (decrypted)", secret=True)
    if tenant.secret_env_names:
        if app.secrets_in_environment:
            for name in tenant.secret_env_names:
                out[name] = PlannedVariable(
                    name, "the tenant's secret variable, from Secrets Manager", secret=True
                )
        else:
            out["ENV_SECRET_ARN"] = PlannedVariable(
                "ENV_SECRET_ARN",
                "the secret holding " + ", ".join(tenant.secret_env_names) + " (JSON)",
            )
    for name, value in tenant.env_vars.items():
        note = " (overrides the release's)" if name in out else ""
        out[name] = PlannedVariable(name, f"{value!r}: the tenant's own{note}")
    return sorted(out.values(), key=lambda v: v.name), left_out


def function_section(tenant: Tenant, artifact: ReleaseArtifact) -> PlanSection:
    overrides = parse_overrides(tenant.app_overrides)
    section = PlanSection("Function")

    def origin(tenant_value) -> str:
        return "the tenant's" if tenant_value else "the release's"

    section.rows.append(
        (
            "memory, timeout",
            f"{tenant.lambda_memory_mb or artifact.memory_mb} MB "
            f"({origin(tenant.lambda_memory_mb)}), {tenant.lambda_timeout_s or artifact.timeout_s}"
            f" s ({origin(tenant.lambda_timeout_s)})",
        )
    )
    section.rows.append(("architecture", artifact.architecture))
    if artifact.package_type == "Zip":
        section.rows.append(
            (
                "runtime, handler",
                f"{overrides.runtime or artifact.runtime} ({origin(overrides.runtime)}), "
                f"{overrides.handler or artifact.handler} ({origin(overrides.handler)})",
            )
        )
    else:
        section.rows.append(("package", "container image (its own entry point)"))
    if tenant.function_in_vpc:
        section.rows.append(("network", "inside the VPC (private subnets)"))
    else:
        section.rows.append(
            ("network", "outside the VPC: Lambda's own network, the internet without a NAT")
        )
    return section


def environment_section(tenant: Tenant, app: AppSettings) -> PlanSection:
    section = PlanSection("Environment the function gets")
    variables, left_out = planned_environment(tenant, app)
    for var in variables:
        section.rows.append((var.name, var.source + (" (secret)" if var.secret else "")))
    for name, why in sorted(left_out.items()):
        section.rows.append((name, f"left out: {why}"))
    if app.password_in_environment and tenant.isolation != Isolation.NONE:
        section.warnings.append(
            "The database password is in the function's configuration: anyone who may read "
            "the function (lambda:GetFunctionConfiguration, the Lambda console) reads it, and "
            "a changed password reaches the function only when the console re-applies it "
            "(repair, or the next deployment; drift reports the difference)."
        )
    if app.secrets_in_environment and (tenant.secret_env_names or app.ssm_variables):
        section.warnings.append(
            "Secret variables are plain Lambda variables here: readable by whoever may read the "
            "function's configuration, re-applied on repair and deployment after a change."
        )
    return section


def api_section(tenant: Tenant, app: AppSettings) -> PlanSection:
    api = effective_api(app, parse_overrides(tenant.app_overrides))
    section = PlanSection("HTTP API")
    section.rows.append(("payload format", api.payload_format))
    stage = api.stage
    if stage != "$default":
        stage += f" (paths start with {api.path_prefix} on the default endpoint)"
        section.warnings.append(
            f"On a named stage an HTTP API puts the stage in every path the code sees "
            f"({api.path_prefix}/...), in both payload formats. Code written for a REST API "
            "(which leaves it out) either runs on $default or strips it itself."
        )
    section.rows.append(("stage", stage))
    if api.cors:
        cors = api.cors
        section.rows.append(
            (
                "CORS",
                f"origins {', '.join(cors.allow_origins)}; methods {', '.join(cors.allow_methods)}"
                f"; headers {', '.join(cors.allow_headers) or 'none'}"
                + ("; with credentials" if cors.allow_credentials else ""),
            )
        )
    else:
        section.rows.append(("CORS", "none (browsers on other origins are refused)"))
    section.rows.append(
        ("access logs", "JSON lines in the API's log group" if api.access_logs else "off")
    )
    if api.throttle_rate is not None or api.throttle_burst is not None:
        section.rows.append(
            (
                "throttling",
                f"{api.throttle_rate if api.throttle_rate is not None else 'account'} req/s, "
                f"burst {api.throttle_burst if api.throttle_burst is not None else 'account'}",
            )
        )
    return section


def contract_sections(tenant: Tenant, artifact: ReleaseArtifact | None) -> list[PlanSection]:
    if artifact is None:
        return []
    app = artifact.app_settings
    sections = [
        function_section(tenant, artifact),
        environment_section(tenant, app),
        api_section(tenant, app),
    ]
    for title, lines in _extra_sections(tenant, app):
        if lines:
            sections.append(PlanSection(title, rows=[("", line) for line in lines]))
    return sections


def _extra_sections(tenant: Tenant, app: AppSettings) -> list[tuple[str, list[str]]]:
    """The sections the modules applying each setting describe themselves (imported here:
    they import much of provisioning, which imports this module's neighbours)."""
    from tenants.attachments import attachments_plan
    from tenants.provisioning.alarms import alarms_plan
    from tenants.provisioning.database_choices import database_plan
    from tenants.provisioning.identity import permissions_plan

    return [
        ("Database", database_plan(tenant)),
        ("Attached services", attachments_plan(tenant)),
        ("Permissions of the function's role", permissions_plan(tenant, app)),
        ("Alarms", alarms_plan(tenant, app)),
    ]

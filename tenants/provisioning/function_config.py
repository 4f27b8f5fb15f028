"""The function's configuration as the release and the tenant want it.

The environment is the release's templates (tenants.app_settings) rendered with the
tenant's values, then the tenant's own variables. Values that come from a secret (the
database password, secret variables put in the environment) are marked, so drift and
plans can say "differs" without ever showing or storing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opsconsole.aws import secrets, ssm
from tenants import resources
from tenants.app_settings import (
    DB_PLACEHOLDERS,
    DEFAULT_DB_NAMES,
    AppSettings,
    parse_overrides,
    template_fields,
)
from tenants.models import Isolation, Tenant
from tenants.provisioning.common import account_id, tenant_network
from tenants.release_source import ReleaseArtifact


@dataclass
class Environment:
    variables: dict[str, str]
    secret_names: set[str] = field(default_factory=set)
    # Release variables left out, with why (shown in the plan).
    left_out: dict[str, str] = field(default_factory=dict)


def has_database(tenant: Tenant) -> bool:
    return tenant.isolation != Isolation.NONE


def _db_values(tenant: Tenant, *, need_password: bool) -> dict[str, str]:
    record = resources.find(tenant, kind="db_secret")
    if record is None or not record.arn:
        raise RuntimeError("The tenant's database secret is not recorded yet (step 3).")
    details = record.details
    values = {
        "db_host": str(details.get("host", "")),
        "db_port": str(details.get("port", "")),
        "db_name": str(details.get("dbname", "")),
        "db_user": str(details.get("username", "")),
        "db_secret_arn": record.arn,
    }
    if need_password:
        value = secrets.get_secret_json(secret_id=record.arn, region=tenant.region)
        values["db_password"] = str(value.get("password", ""))
    return values


def _env_secret_arn(tenant: Tenant) -> str:
    record = resources.find(tenant, kind="env_secret")
    if record and record.arn and record.status == "present":
        return record.arn
    return ""


def ssm_parameter_names(
    tenant: Tenant, app: AppSettings, *, account: str | None = None
) -> dict[str, str]:
    """VARIABLE -> the SSM parameter it is read from, rendered for ``tenant``."""
    if account is None:
        uses_account = any("account" in template_fields(t) for t in app.ssm_variables.values())
        account = account_id(tenant.region) if uses_account else ""
    values = {"tenant": tenant.slug, "region": tenant.region, "account": account}
    return {name: template.format(**values) for name, template in app.ssm_variables.items()}


def _ssm_values(tenant: Tenant, app: AppSettings) -> dict[str, str]:
    """The release's SSM variables' values (decrypted), read at each deployment."""
    names = ssm_parameter_names(tenant, app)
    found = ssm.get_parameters(names.values(), region=tenant.region, decrypt=True)
    missing = [(var, parameter) for var, parameter in names.items() if parameter not in found]
    if missing:
        lines = [
            f"{parameter} (for {var}): aws ssm put-parameter --type SecureString "
            f"--name '{parameter}' --value '...' --region {tenant.region}"
            for var, parameter in missing
        ]
        raise RuntimeError(
            f"The release reads {len(missing)} SSM parameter(s) that do not exist in "
            f"{tenant.region}; create them, then run the step again: " + "; ".join(lines)
        )
    return {var: found[parameter] for var, parameter in names.items()}


def environment(tenant: Tenant, app: AppSettings) -> Environment:
    """The function's variables for ``tenant`` under its release's settings."""
    database = has_database(tenant)
    env_secret = _env_secret_arn(tenant)
    needed = set().union(*(template_fields(t) for t in app.environment.values()))
    values = {
        "tenant": tenant.slug,
        "region": tenant.region,
        "account": account_id(tenant.region) if "account" in needed else "",
        "env_secret_arn": env_secret,
    }
    if database and needed & set(DB_PLACEHOLDERS):
        values.update(_db_values(tenant, need_password="db_password" in needed))
    out = Environment(variables={})
    secret_names = app.secret_names()
    for name, template in app.environment.items():
        fields = template_fields(template)
        if not database and (fields & set(DB_PLACEHOLDERS) or name in DEFAULT_DB_NAMES):
            out.left_out[name] = "the tenant brings its own database"
            continue
        if "env_secret_arn" in fields and not env_secret:
            out.left_out[name] = "the tenant has no secret variables"
            continue
        out.variables[name] = template.format(**values)
        if name in secret_names:
            out.secret_names.add(name)
    if env_secret:
        if app.secrets_in_environment:
            stored = secrets.get_secret_json(secret_id=env_secret, region=tenant.region)
            for name in tenant.secret_env_names:
                out.variables[name] = str(stored.get(name, ""))
                out.secret_names.add(name)
        else:
            out.variables["ENV_SECRET_ARN"] = env_secret
    # Secret values like the ones above (app_settings asks for secrets_in_environment):
    # drift says "differs" for them and never shows them.
    if app.ssm_variables:
        for name, value in _ssm_values(tenant, app).items():
            out.variables[name] = value
            out.secret_names.add(name)
    for name, attachment_vars in attachment_variables(tenant).items():
        out.variables[name] = attachment_vars
    # The tenant's own variables come last: a tenant may override a release's constant
    # (DB_SSLMODE=disable for a database without TLS); the plan says so.
    for name, value in tenant.env_vars.items():
        out.variables[str(name)] = str(value)
        out.secret_names.discard(str(name))
    return out


def attachment_variables(tenant: Tenant) -> dict[str, str]:
    """Variables the tenant's attachments (a shared Redis) set: NAME -> value."""
    from tenants.attachments import attachments_for

    out: dict[str, str] = {}
    for attachment in attachments_for(tenant):
        values = {"host": attachment.host, "port": str(attachment.port), "tenant": tenant.slug}
        for name, template in attachment.variables.items():
            out[name] = str(template).format(**values)
    return out


def effective_function(tenant: Tenant, artifact: ReleaseArtifact) -> dict[str, Any]:
    """Memory, timeout, runtime and handler: the tenant's override, else the release's."""
    overrides = parse_overrides(tenant.app_overrides)
    return {
        "memory_mb": tenant.lambda_memory_mb or artifact.memory_mb,
        "timeout_s": tenant.lambda_timeout_s or artifact.timeout_s,
        "runtime": overrides.runtime or artifact.runtime,
        "handler": overrides.handler or artifact.handler,
        "architecture": artifact.architecture,
    }


def vpc_config(tenant: Tenant) -> dict[str, list[str]]:
    if not tenant.function_in_vpc:
        # Outside the VPC: Lambda's own network, the internet without a NAT.
        return {"SubnetIds": [], "SecurityGroupIds": []}
    network = tenant_network(tenant)
    groups = [network.function_sg_id]
    from tenants.attachments import tenant_security_group

    own = tenant_security_group(tenant)
    if own:
        groups.append(own)
    return {"SubnetIds": sorted(network.subnet_ids), "SecurityGroupIds": sorted(groups)}


def desired_configuration(
    tenant: Tenant, artifact: ReleaseArtifact
) -> tuple[dict[str, Any], set[str]]:
    """UpdateFunctionConfiguration's arguments, and the variables whose values are secret."""
    role = resources.find(tenant, kind="role")
    if role is None or not role.arn:
        raise RuntimeError("The tenant's IAM role is not recorded yet (step 4).")
    function = effective_function(tenant, artifact)
    env = environment(tenant, artifact.app_settings)
    config: dict[str, Any] = {
        "Role": role.arn,
        "MemorySize": function["memory_mb"],
        "Timeout": function["timeout_s"],
        "Environment": {"Variables": env.variables},
        "VpcConfig": vpc_config(tenant),
    }
    if artifact.package_type == "Zip":
        config["Runtime"] = function["runtime"]
        config["Handler"] = function["handler"]
    return config, env.secret_names


def config_changes(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    changes = {}
    for key, value in wanted.items():
        have = current.get(key)
        if key == "VpcConfig":
            have = {
                "SubnetIds": sorted((have or {}).get("SubnetIds", [])),
                "SecurityGroupIds": sorted((have or {}).get("SecurityGroupIds", [])),
            }
            value = {k: sorted(v) for k, v in value.items()}
        if key == "Environment":
            have = {"Variables": (have or {}).get("Variables", {})}
        if have != value:
            changes[key] = wanted[key]
    return changes

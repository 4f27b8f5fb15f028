"""What an app expects of its stack, declared by its release, overridden per tenant.

A release carries its app's settings (``AppSettings``): the environment its code reads,
the shape of the HTTP API in front of it, extra permissions for its role, its alarms.
A tenant may override some of them (``TenantOverrides``). Both are stored as JSON and
validated here, before anything touches AWS; an error names the field at fault
(``api.cors.allow_origins``). docs/app-contract.md is the user's description of these.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

# Lambda sets these itself and refuses a configuration that sets them ("reserved keys").
# Every other name is the app's, AWS_ prefix or not (AWS_BUCKET, AWS_REGION_NAME).
LAMBDA_RESERVED_ENV = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
# Lambda's own key pattern, [a-zA-Z]([a-zA-Z0-9_])+: two characters at least. \Z, not $,
# which would let a final newline through.
ENV_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]+\Z")

# Placeholders an environment template may use, and what each becomes.
DB_PLACEHOLDERS = {
    "db_host": "where the function connects: the RDS Proxy, instance, cluster or shared instance",
    "db_port": "that endpoint's port",
    "db_name": "the tenant's database",
    "db_user": "the tenant's database role",
    "db_password": "the role's password (only with password_in_environment)",
    "db_secret_arn": "the Secrets Manager secret with all of the above, as JSON",
}
TENANT_PLACEHOLDERS = {
    "tenant": "the tenant's slug",
    "region": "the tenant's region",
    "account": "the AWS account id",
    "env_secret_arn": "the secret holding the tenant's secret variables (when it has any)",
}
PLACEHOLDERS = {**DB_PLACEHOLDERS, **TENANT_PLACEHOLDERS}
SECRET_PLACEHOLDERS = frozenset({"db_password"})

DEFAULT_ENVIRONMENT = {
    "DB_HOST": "{db_host}",
    "DB_PORT": "{db_port}",
    "DB_NAME": "{db_name}",
    "DB_USER": "{db_user}",
    "DB_SSLMODE": "require",
    "DB_SECRET_ARN": "{db_secret_arn}",
    "TENANT_SLUG": "{tenant}",
}

# The defaults that describe the console's database: left out for a tenant without one.
DEFAULT_DB_NAMES = frozenset(name for name in DEFAULT_ENVIRONMENT if name.startswith("DB_"))

ALARM_KINDS = ("errors", "throttles", "api-5xx", "db-cpu", "db-connections")
# The console's alarm defaults: one breaching minute of three raises it (a canary's bake
# watches these for a few minutes, so "5 of 5 minutes" would let a broken release pass).
ALARM_DEFAULTS = {
    "errors": {"threshold": 5.0, "period_s": 60, "evaluation_periods": 3, "datapoints": 1},
    "throttles": {"threshold": 1.0, "period_s": 60, "evaluation_periods": 3, "datapoints": 1},
    "api-5xx": {"threshold": 5.0, "period_s": 60, "evaluation_periods": 3, "datapoints": 1},
    "db-cpu": {"threshold": 80.0, "period_s": 60, "evaluation_periods": 3, "datapoints": 1},
    "db-connections": {
        "threshold": 80.0,
        "period_s": 60,
        "evaluation_periods": 3,
        "datapoints": 1,
    },
}

IAM_ACTION_RE = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9*?]+\Z")
IAM_RESOURCE_PLACEHOLDERS = frozenset({"tenant", "account", "region"})
STAGE_RE = re.compile(r"^(\$default|[A-Za-z0-9_-]{1,128})\Z")
HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "*"}


def template_fields(template: str) -> set[str]:
    """The placeholder names in ``template``; raises ValueError on a malformed one."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"{template!r}: {exc} (write a literal brace as {{{{ or }}}})") from exc


def reserved_reason(name: str) -> str | None:
    """Why ``name`` cannot be a function variable, or None when it can."""
    if not ENV_NAME_RE.match(name):
        return (
            "not a valid name (letters, digits and underscores, starting with a letter, "
            "two characters at least)"
        )
    if name in LAMBDA_RESERVED_ENV:
        return "Lambda sets it itself (a reserved variable)"
    return None


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


StrList = Annotated[list[str], BeforeValidator(_as_list)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cors(_Strict):
    allow_origins: list[str] = Field(min_length=1)
    allow_methods: list[str] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    allow_headers: list[str] = ["content-type", "authorization"]
    expose_headers: list[str] = []
    allow_credentials: bool = False
    max_age_s: int = Field(0, ge=0, le=86400)

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not re.match(r"^https?://[^/\s]+$", origin):
                raise ValueError(f"{origin!r}: an origin is scheme://host[:port] or *")
        return value

    @field_validator("allow_methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        upper = [m.upper() for m in value]
        unknown = sorted(set(upper) - HTTP_METHODS)
        if unknown:
            raise ValueError(f"unknown methods: {', '.join(unknown)}")
        return upper

    @model_validator(mode="after")
    def _credentials(self) -> Cors:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError("allow_credentials needs named origins: API Gateway refuses '*'")
        return self


class ApiShape(_Strict):
    payload_format: Literal["1.0", "2.0"] = "2.0"
    stage: str = "$default"
    cors: Cors | None = None
    access_logs: bool = False
    throttle_rate: float | None = Field(None, ge=0, le=10000)
    throttle_burst: int | None = Field(None, ge=0, le=5000)

    @field_validator("stage")
    @classmethod
    def _stage(cls, value: str) -> str:
        if not STAGE_RE.match(value):
            raise ValueError("$default, or letters, digits, '-' and '_' (up to 128)")
        return value

    @property
    def path_prefix(self) -> str:
        """What a named stage puts before every path of the API's default endpoint."""
        return "" if self.stage == "$default" else f"/{self.stage}"


class Statement(_Strict):
    """One IAM statement, in IAM's own keys; resources may use {tenant}, {account}, {region}."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    sid: str | None = Field(None, alias="Sid", pattern=r"^[A-Za-z0-9]{1,100}$")
    effect: Literal["Allow", "Deny"] = Field("Allow", alias="Effect")
    action: StrList = Field(alias="Action", min_length=1)
    resource: StrList = Field(alias="Resource", min_length=1)
    condition: dict[str, dict[str, Any]] | None = Field(None, alias="Condition")
    # Not IAM's: the release says every tenant reads these same resources (a team's
    # exercise videos), so a wildcard need not come after {tenant}. Reads only.
    shared: bool = Field(False, alias="Shared")

    @field_validator("action")
    @classmethod
    def _actions(cls, value: list[str]) -> list[str]:
        for action in value:
            if action == "*" or not IAM_ACTION_RE.match(action):
                raise ValueError(
                    f"{action!r}: an action is service:Name (s3:GetObject, ssm:GetParameter*)"
                )
        return value

    @field_validator("resource")
    @classmethod
    def _resources(cls, value: list[str]) -> list[str]:
        for resource in value:
            if resource != "*" and not resource.startswith("arn:"):
                raise ValueError(f"{resource!r}: a resource is an ARN or *")
            unknown = template_fields(resource) - IAM_RESOURCE_PLACEHOLDERS
            if unknown:
                raise ValueError(
                    f"{resource!r}: unknown placeholder {{{sorted(unknown)[0]}}} "
                    "(use {tenant}, {account}, {region})"
                )
        return value

    @model_validator(mode="after")
    def _not_everything(self) -> Statement:
        if self.effect == "Allow" and "*" in self.resource:
            broad = [a for a in self.action if a.endswith(":*")]
            if broad:
                raise ValueError(
                    f"{broad[0]} on every resource (*) is refused: name the resources, with "
                    "{tenant} to keep each tenant to its own"
                )
        return self

    def rendered(self, *, tenant: str, account: str, region: str) -> dict[str, Any]:
        values = {"tenant": tenant, "account": account, "region": region}
        out: dict[str, Any] = {
            "Effect": self.effect,
            "Action": list(self.action),
            "Resource": [r.format(**values) for r in self.resource],
        }
        if self.sid:
            out["Sid"] = self.sid
        if self.condition:
            out["Condition"] = self.condition
        return out


class AlarmRule(_Strict):
    threshold: float | None = None
    period_s: int | None = None
    evaluation_periods: int | None = Field(None, ge=1, le=100)
    datapoints: int | None = Field(None, ge=1, le=100)
    enabled: bool | None = None

    @field_validator("period_s")
    @classmethod
    def _period(cls, value: int | None) -> int | None:
        if value is not None and (value < 60 or value % 60) and value not in (10, 20, 30):
            raise ValueError("10, 20, 30, or a multiple of 60 seconds")
        return value


AlarmRules = dict[Literal[ALARM_KINDS], AlarmRule]  # type: ignore[valid-type]


class AppSettings(_Strict):
    """A release's settings: what its code expects of every tenant's stack."""

    # Merged over DEFAULT_ENVIRONMENT; a name given as null leaves that default out.
    environment: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_ENVIRONMENT))
    password_in_environment: bool = False
    secrets_in_environment: bool = False
    api: ApiShape = ApiShape()
    permissions: list[Statement] = []
    # NAME -> SSM parameter name (with {tenant}, {account}, {region}): a secret variable
    # read from Parameter Store (decrypted) into the environment at each deployment; the
    # role may read exactly these parameters. Needs secrets_in_environment.
    ssm_variables: dict[str, str] = {}
    alarms: AlarmRules = {}

    @field_validator("ssm_variables")
    @classmethod
    def _ssm(cls, value: dict[str, str]) -> dict[str, str]:
        for name, parameter in value.items():
            reason = reserved_reason(name)
            if reason:
                raise ValueError(f"{name}: {reason}")
            if not re.match(r"^/?[A-Za-z0-9_.\-/{}]{1,1011}\Z", parameter):
                raise ValueError(f"{name}: {parameter!r} is not a parameter name")
            unknown = template_fields(parameter) - IAM_RESOURCE_PLACEHOLDERS
            if unknown:
                raise ValueError(f"{name}: unknown placeholder {{{sorted(unknown)[0]}}}")
        return value

    @field_validator("environment", mode="before")
    @classmethod
    def _merge_defaults(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        merged = {**DEFAULT_ENVIRONMENT, **value}
        return {k: v for k, v in merged.items() if v is not None}

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        for name, template in value.items():
            reason = reserved_reason(name)
            if reason:
                raise ValueError(f"{name}: {reason}")
            unknown = template_fields(template) - set(PLACEHOLDERS)
            if unknown:
                raise ValueError(
                    f"{name}: unknown placeholder {{{sorted(unknown)[0]}}}; known: "
                    + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
                )
        return value

    @model_validator(mode="after")
    def _ssm_needs_environment(self) -> AppSettings:
        if self.ssm_variables and not self.secrets_in_environment:
            raise ValueError(
                "ssm_variables put secrets in the function's configuration: set "
                "secrets_in_environment"
            )
        clash = set(self.ssm_variables) & set(self.environment)
        if clash:
            raise ValueError(f"given in environment and ssm_variables: {', '.join(sorted(clash))}")
        return self

    @model_validator(mode="after")
    def _password(self) -> AppSettings:
        if not self.password_in_environment:
            for name, template in self.environment.items():
                if template_fields(template) & SECRET_PLACEHOLDERS:
                    raise ValueError(
                        f"environment.{name} holds the database password: set "
                        "password_in_environment to put it in the function's configuration"
                    )
        return self

    def secret_names(self) -> set[str]:
        """Variables whose values come from a secret (never shown or stored by the console)."""
        return {
            name
            for name, template in self.environment.items()
            if template_fields(template) & SECRET_PLACEHOLDERS
        }

    def db_names(self) -> set[str]:
        """Variables that need the tenant's own database."""
        return {
            name
            for name, template in self.environment.items()
            if template_fields(template) & set(DB_PLACEHOLDERS)
        }


class TenantOverrides(_Strict):
    """What one tenant changes of its release's settings (absent: the release's)."""

    runtime: str | None = Field(None, pattern=r"^[a-z0-9.]{3,32}$")
    # Lambda's Handler pattern: [^\s]+.
    handler: str | None = Field(None, pattern=r"^[^\s]{1,128}$")
    api: dict[str, Any] | None = None
    alarms: AlarmRules = {}

    @field_validator("api")
    @classmethod
    def _api(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            ApiShape(**value)  # every given field must be valid on its own
        return value


def problems(error: ValidationError, *, prefix: str = "") -> list[str]:
    """Pydantic's errors as the console shows them: ``field.path: message``."""
    out = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        out.append(f"{prefix}{where}: {message}" if where else f"{prefix}{message}")
    return out


def stored_app_settings(settings: AppSettings) -> dict[str, Any]:
    """The JSON a release keeps: what differs from the defaults, a default variable the
    release leaves out as null (reading merges the defaults back in)."""
    stored = settings.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    if "environment" in stored:
        environment = {
            k: v for k, v in settings.environment.items() if DEFAULT_ENVIRONMENT.get(k) != v
        }
        environment.update({k: None for k in DEFAULT_ENVIRONMENT if k not in settings.environment})
        stored["environment"] = environment
    return stored


def parse_app_settings(data: dict | None) -> AppSettings:
    return AppSettings.model_validate(data or {})


def parse_overrides(data: dict | None) -> TenantOverrides:
    return TenantOverrides.model_validate(data or {})


def effective_api(settings: AppSettings, overrides: TenantOverrides) -> ApiShape:
    if not overrides.api:
        return settings.api
    return ApiShape(**{**settings.api.model_dump(), **overrides.api})


def effective_alarms(settings: AppSettings, overrides: TenantOverrides) -> dict[str, dict]:
    """Every alarm kind with its rule: the console's default, the release's, the tenant's."""
    rules = {}
    for kind in ALARM_KINDS:
        rule = {**ALARM_DEFAULTS[kind], "enabled": True}
        for layer in (settings.alarms.get(kind), overrides.alarms.get(kind)):
            if layer is not None:
                rule.update(layer.model_dump(exclude_none=True))
        rules[kind] = rule
    return rules

"""Hypothesis fuzzes every form field that becomes part of an AWS name, tag or policy.

For each: any text (and alphabets chosen to sit on the edges of the rules: a trailing
newline, unicode, the one character AWS refuses) goes through the console's own validator.
Nothing may raise but a validation error, and whatever is accepted must make names that
AWS's own rules accept. The rules are written here from the AWS API references (not from
the console's code), so a validator that drifts from AWS fails here, not in a deployment.
No AWS call is made.
"""

from __future__ import annotations

import json
import re
import unicodedata

from django import forms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from deployments.releases import VERSION_RE, function_problems
from tenants import naming
from tenants.app_settings import (
    ApiShape,
    AppSettings,
    Statement,
    TenantOverrides,
    reserved_reason,
)
from tenants.attachments import HOST_RE, NAME_RE, group_name, rule_description
from tenants.forms import DOMAIN_RE, TenantOnboardForm, parse_pairs
from tenants.provisioning import health_check
from tenants.provisioning.common import tags_for

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- AWS's rules (API reference "Pattern" and "Length Constraints") ----------------------
# Lambda CreateFunction FunctionName (the name form), 1-64.
LAMBDA_FUNCTION = re.compile(r"[a-zA-Z0-9_-]{1,64}")
# Lambda CreateAlias Name: (?!^[0-9]+$)([a-zA-Z0-9-_]+), 1-128.
LAMBDA_ALIAS = re.compile(r"(?![0-9]+\Z)[a-zA-Z0-9_-]{1,128}")
# Lambda Environment.Variables key: [a-zA-Z]([a-zA-Z0-9_])+ (two characters at least).
LAMBDA_ENV_KEY = re.compile(r"[a-zA-Z][a-zA-Z0-9_]+")
# Lambda Handler: [^\s]+, up to 128 (\s as in Java, AWS's: space, \t \n \x0b \f \r).
LAMBDA_HANDLER = re.compile(r"[^ \t\n\x0b\f\r]{1,128}")
# IAM CreateRole RoleName: [\w+=,.@-]+, 1-64 (\w in IAM's sense: ASCII).
IAM_ROLE = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
# IAM policy Action: "service:Action", service prefix lowercase, action wildcards allowed.
IAM_ACTION = re.compile(r"[a-z0-9-]+:[A-Za-z0-9*?]+")
# An ARN in a policy: arn:partition:service:region:account:resource, no whitespace.
IAM_RESOURCE = re.compile(r"arn:[a-z-]+:[a-z0-9-]*:[a-z0-9-]*:[0-9*]*:[^\s]+")
# Secrets Manager CreateSecret Name: the ASCII letters, digits and /_+=.@-, 1-512.
SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
# CloudWatch Logs CreateLogGroup logGroupName: [\.\-_/#A-Za-z0-9]+, 1-512.
LOG_GROUP = re.compile(r"[.\-_/#A-Za-z0-9]{1,512}")
# RDS DBInstanceIdentifier / DBClusterIdentifier / DBProxyName: a letter first, letters,
# digits and hyphens, no two hyphens in a row, no hyphen last, 1-63.
RDS_ID = re.compile(r"[a-zA-Z](?:-?[a-zA-Z0-9])*")
# PostgreSQL identifier the console never quotes: lowercase, digits, underscore, 1-63.
PG_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# API Gateway v2 CreateApi Name: 1-128 characters (any).
API_NAME_MAX = 128
# ECR image tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
ECR_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
# SSM parameter name: a-zA-Z0-9_.- and / for hierarchy, up to 2048 with the path; not
# beginning with "aws" or "ssm" (any case).
SSM_NAME = re.compile(r"(?!/?(?i:aws|ssm))[a-zA-Z0-9_./-]{1,2048}")
# EC2 security group name and rule description: a-zA-Z0-9, spaces and ._-:/()#,@[]+=&;{}!$*,
# up to 255; a group name may not start with sg-.
EC2_TEXT = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}")
# CloudWatch PutMetricAlarm AlarmName: 1-255 characters, no control characters.
ALARM_MAX = 255
# Lambda PublishVersion Description: 0-256.
DESCRIPTION_MAX = 256


def full(rule: re.Pattern, text: str) -> bool:
    return rule.fullmatch(text) is not None


def aws_tag_ok(text: str, *, key: bool) -> bool:
    """Tagging API: letters, separators (spaces), numbers in any script and _.:/=+-@;
    keys 1-128 and not beginning with aws:, values 0-256."""
    if key and (not 1 <= len(text) <= 128 or text.lower().startswith("aws:")):
        return False
    if not key and len(text) > 256:
        return False
    return all(unicodedata.category(c)[0] in "LZN" or c in "_.:/=+-@" for c in text)


def no_control(text: str) -> bool:
    return not any(unicodedata.category(c).startswith("C") for c in text)


# --- alphabets ------------------------------------------------------------------------
EDGE = st.sampled_from(list("aZ09-_./:+=@ \t\n\r\x00é€ß*?{}$#%\\\"'"))
ASCII_NAMEISH = st.text(alphabet=st.sampled_from(list("abcz09-_\n A")), max_size=45)
ANY_TEXT = st.one_of(st.text(max_size=80), st.text(alphabet=EDGE, max_size=80), ASCII_NAMEISH)


def _field_value(name: str, text: str, **others):
    """What the onboarding form makes of ``text`` in field ``name`` (its field's own
    cleaning, then the form's clean_<name>), or None when it refuses it. The rest of the
    form is left out: it adds no rule to this field and costs a database read."""
    field = TenantOnboardForm.base_fields[name]
    form = TenantOnboardForm.__new__(TenantOnboardForm)  # no __init__: no release lookup
    try:
        form.cleaned_data = {**others, name: field.clean(text)}
        return getattr(TenantOnboardForm, f"clean_{name}")(form)
    except forms.ValidationError:
        return None


# --- the slug: every AWS name is made from it ------------------------------------------------


def slug_names_ok(slug: str) -> None:
    assert full(LAMBDA_FUNCTION, naming.function_name(slug))
    assert full(IAM_ROLE, naming.role_name(slug))
    assert full(LOG_GROUP, naming.log_group_name(slug))
    for secret in (naming.db_secret_name(slug), naming.env_secret_name(slug)):
        assert full(SECRET_NAME, secret)
    assert full(PG_IDENT, naming.db_name(slug)) and full(PG_IDENT, naming.db_user(slug))
    for rds in (naming.db_instance_id(slug), naming.db_cluster_id(slug)):
        assert full(RDS_ID, rds) and len(rds) <= 63
    assert full(RDS_ID, naming.db_proxy_name(slug)) and len(naming.db_proxy_name(slug)) <= 60
    assert 1 <= len(naming.api_name(slug)) <= API_NAME_MAX
    assert full(LAMBDA_ALIAS, naming.ALIAS)
    for kind in naming.ALARM_KINDS:
        alarm = naming.alarm_name(slug, kind)
        assert len(alarm) <= ALARM_MAX and no_control(alarm)
    sg = group_name(slug)
    assert full(EC2_TEXT, sg) and len(sg) >= 1 and not sg.startswith("sg-")
    for key, value in naming.tags(slug).items():
        assert aws_tag_ok(key, key=True) and aws_tag_ok(value, key=False)


@FUZZ
@given(slug=st.one_of(ANY_TEXT, st.from_regex(naming.SLUG_RE, fullmatch=True)))
def test_slug(slug):
    value = _field_value("slug", slug)
    if value is not None:
        slug_names_ok(value)


def test_the_longest_and_oddest_slugs_make_valid_names():
    for slug in ("a", "a" * 40, "a-b-c-d", "z9" * 20):
        assert naming.SLUG_RE.match(slug)
        slug_names_ok(slug)


# --- tags: on every resource ------------------------------------------------------------------


@FUZZ
@given(
    text=st.one_of(
        ANY_TEXT,
        st.lists(ANY_TEXT, max_size=4).map("\n".join),
        st.integers(40, 60).map(lambda n: "\n".join(f"k{i}=v" for i in range(n))),
    )
)
def test_tags(text):
    from tenants.models import Tenant

    value = _field_value("tags_text", text)
    if value is None:
        return
    tags = tags_for(Tenant(slug="fz", tags=value))
    assert len(tags) <= 50  # AWS's limit a resource
    for key, tag_value in tags.items():
        assert aws_tag_ok(key, key=True), key
        assert aws_tag_ok(tag_value, key=False), tag_value


# --- environment variable names (plain and secret), and secret names ---------------------


@FUZZ
@given(
    name=st.one_of(ANY_TEXT, st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,3}", fullmatch=True)),
    value=ANY_TEXT,
)
def test_env_var_names(name, value):
    try:
        pairs = parse_pairs(f"{name}={value}", field="env")
    except forms.ValidationError:
        return
    for key in pairs:
        assert full(LAMBDA_ENV_KEY, key), key
        assert reserved_reason(key) is None


# --- the custom domain ---------------------------------------------------------------------


@FUZZ
@given(domain=st.one_of(ANY_TEXT, st.from_regex(r"[a-z0-9-]{1,8}(\.[a-z0-9-]{1,8}){1,3}")))
def test_custom_domain(domain):
    value = _field_value("custom_domain", domain)
    if value:
        # API Gateway DomainName: a DNS name, labels of 1-63, 253 in all, ASCII.
        assert len(value) <= 253 and value.isascii() and DOMAIN_RE.fullmatch(value)
        assert all(0 < len(label) <= 63 for label in value.split("."))
        assert not any(label.startswith("-") or label.endswith("-") for label in value.split("."))


# --- IAM extra statements of a release -------------------------------------------------------


@FUZZ
@given(action=ANY_TEXT, resource=ANY_TEXT, sid=st.one_of(st.none(), ANY_TEXT))
def test_iam_statement(action, resource, sid):
    raw = {"Action": [action], "Resource": ["arn:aws:s3:::b/{tenant}/" + resource, resource]}
    if sid is not None:
        raw["Sid"] = sid
    try:
        statement = Statement.model_validate(raw)
    except (ValidationError, ValueError):
        return
    for one in statement.action:
        assert full(IAM_ACTION, one), one
    for arn in statement.resource:
        assert arn == "*" or full(IAM_RESOURCE, arn.replace("{tenant}", "fz")), arn
    assert statement.sid is None or full(re.compile(r"[A-Za-z0-9]{1,100}"), statement.sid)
    json.dumps(statement.model_dump(by_alias=True, exclude_none=True))


# --- SSM parameter names of a release -----------------------------------------------------


@FUZZ
@given(parameter=st.one_of(ANY_TEXT, st.from_regex(r"/?[a-z]{1,4}(/[a-z{}]{1,8}){0,3}")))
def test_ssm_parameter_names(parameter):
    try:
        settings_ = AppSettings.model_validate(
            {"secrets_in_environment": True, "ssm_variables": {"API_KEY": parameter}}
        )
    except (ValidationError, ValueError):
        return
    name = settings_.ssm_variables["API_KEY"].format(
        tenant="fz", account="123456789012", region="us-east-1"
    )
    assert full(SSM_NAME, name), name


# --- handler and runtime (a release's, a tenant's override) ----------------------------------


@FUZZ
@given(handler=ANY_TEXT, runtime=ANY_TEXT)
def test_override_handler_and_runtime(handler, runtime):
    for field, text in (("handler", handler), ("runtime", runtime)):
        try:
            overrides = TenantOverrides.model_validate({field: text})
        except (ValidationError, ValueError):
            continue
        value = getattr(overrides, field)
        if field == "handler":
            assert full(LAMBDA_HANDLER, value), value
        else:
            assert full(re.compile(r"[a-z0-9.]{3,32}"), value), value


# --- the release version: ECR tag, version description, alias-free -------------------------


@FUZZ
@given(
    version=st.one_of(
        ANY_TEXT, st.from_regex(r"[0-9]{1,2}(\.[0-9]{1,2}){2}[+_.a-z-]{0,4}", fullmatch=True)
    )
)
def test_release_version(version):
    version = version.strip()  # as release_register does
    if not VERSION_RE.match(version):
        return
    assert full(ECR_TAG, version), version
    description = f"release {version}"
    assert len(description) <= DESCRIPTION_MAX and no_control(description)


# --- attachments: the name goes into security group rule descriptions -----------------------


@FUZZ
@given(name=st.one_of(ANY_TEXT, ASCII_NAMEISH), host=ANY_TEXT)
def test_attachment_name_and_host(name, host):
    if NAME_RE.match(name):
        description = rule_description("fz", [name, "other"])
        assert full(EC2_TEXT, description), description
    if host and len(host) <= 253 and HOST_RE.match(host):
        # Shown in a variable and connected to: one line of host name characters.
        assert full(re.compile(r"[A-Za-z0-9.-]{1,253}"), host), host


# --- the health check path: sent by the console as an HTTP request line ---------------------


@FUZZ
@given(path=st.one_of(ANY_TEXT, st.from_regex(r"/[a-z]{0,6}(\?[a-z=&]{0,6})?").map(str)))
def test_health_path(path):
    found = health_check.problems(
        method="GET", path=path, statuses="200-299", timeout_s=5, function_timeout_s=30
    )
    if "health_path" not in found:
        assert path.startswith("/") and len(path) <= 255
        assert not any(c.isspace() or not c.isprintable() for c in path), repr(path)


@FUZZ
@given(handler=ANY_TEXT, runtime=ANY_TEXT)
def test_release_handler_and_runtime(handler, runtime):
    problems = function_problems(runtime=runtime, handler=handler)
    if handler and not any(p.startswith("handler") for p in problems):
        assert full(LAMBDA_HANDLER, handler), handler
    if runtime and not any(p.startswith("runtime") for p in problems):
        assert full(re.compile(r"[a-z0-9.]{3,32}"), runtime), runtime


# --- the HTTP API's stage (a release's api.stage, a tenant's override) -------------------
# API Gateway v2 CreateStage StageName: $default, or [a-zA-Z0-9_-]{1,128}.
STAGE_NAME = re.compile(r"\$default|[a-zA-Z0-9_-]{1,128}")


@FUZZ
@given(stage=st.one_of(ANY_TEXT, st.just("$default\n"), st.from_regex(r"[a-z_-]{1,8}")))
def test_api_stage(stage):
    try:
        shape = ApiShape.model_validate({"stage": stage})
    except (ValidationError, ValueError):
        return
    assert full(STAGE_NAME, shape.stage), shape.stage

"""Onboarding and configuration forms. Everything is validated here, before AWS is touched."""

from __future__ import annotations

import json
import re
import unicodedata
from decimal import Decimal

from django import forms
from django.conf import settings
from pydantic import ValidationError

from opsconsole.awsaccounts.models import DEFAULT_NAME, AwsAccount
from tenants import naming, release_source
from tenants.app_settings import parse_overrides, reserved_reason
from tenants.app_settings import problems as schema_problems
from tenants.models import AlarmTopicChoice, Isolation, Tenant
from tenants.validation import tenant_problems

# The console's own pointer to the secret variables: set on the function when the tenant
# has secret variables kept in Secrets Manager.
CONSOLE_ENV = {"ENV_SECRET_ARN"}
LAMBDA_ENV_LIMIT_BYTES = 4096
DOMAIN_RE = re.compile(r"^(?=.{1,253}\Z)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z")
ACM_ARN_RE = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}\Z")
# What AWS's tagging APIs accept besides letters, numbers and spaces of any script.
TAG_PUNCTUATION = set("_.:/=+-@")
MAX_TAGS = 48  # AWS's 50 a resource, less the console's Tenant and ManagedBy


def tag_problem(key: str, value: str) -> str | None:
    """Why AWS would refuse this tag, or None (the tagging API's rules)."""
    if not 1 <= len(key) <= 128:
        return "a key has 1 to 128 characters"
    if len(value) > 256:
        return "a value has at most 256 characters"
    if key.lower().startswith("aws:"):
        return "keys starting with aws: are AWS's own"
    for char in key + value:
        if unicodedata.category(char)[0] not in "LZN" and char not in TAG_PUNCTUATION:
            return f"{char!r} is not allowed (letters, digits, spaces and _ . : / = + - @)"
    return None


def parse_pairs(text: str, *, field: str) -> dict[str, str]:
    """Lines of NAME=value (blank lines and # comments ignored)."""
    pairs: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise forms.ValidationError(f"Line {number}: expected NAME=value.")
        name, value = line.split("=", 1)
        name = name.strip()
        reason = reserved_reason(name)
        if reason:
            raise forms.ValidationError(f"Line {number}: {name!r}: {reason}.")
        if name in CONSOLE_ENV:
            raise forms.ValidationError(
                f"Line {number}: {name} is the console's: it points at the secret variables."
            )
        if name in pairs:
            raise forms.ValidationError(f"Line {number}: {name} is given twice.")
        pairs[name] = value.strip()
    return pairs


def parse_overrides_text(text: str) -> dict:
    """A tenant's overrides (JSON), validated by tenants.app_settings.TenantOverrides."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(f"Not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise forms.ValidationError('A JSON object, such as {"api": {"stage": "prod"}}.')
    try:
        parse_overrides(data)
    except ValidationError as exc:
        raise forms.ValidationError(schema_problems(exc)) from None
    return data


def release_for(version: str):
    """The artifact a tenant will run (its chosen release, else the one new tenants get)."""
    source = release_source.get()
    version = version or source.newest_version() or ""
    if not version:
        return None
    try:
        return source.artifact(version, region="")
    except LookupError:
        return None


def outside_vpc_field() -> forms.BooleanField:
    # Asked as "outside", so that a form posted without the box (a script, an old page)
    # keeps the function where a tenant's database can be reached.
    return forms.BooleanField(
        required=False,
        label="Run the function outside the VPC",
        help_text="Only for a tenant that brings its own database and has no attached "
        "services: it then reaches the internet without a NAT.",
    )


def _release_help(form: forms.Form, version: str) -> None:
    """Memory and timeout left blank follow the release: say what that is."""
    artifact = release_for(version)
    for field, unit, value in (
        ("lambda_memory_mb", "MB", artifact and artifact.memory_mb),
        ("lambda_timeout_s", "s", artifact and artifact.timeout_s),
    ):
        if field in form.fields:
            form.fields[field].required = False
            form.fields[field].help_text = (
                f"Blank: the release's ({value} {unit})." if value else "Blank: the release's."
            )


def aws_account_field() -> forms.ModelChoiceField:
    """The AWS account a new tenant lives in, by name (the API sends the name too)."""
    return forms.ModelChoiceField(
        queryset=AwsAccount.objects.all(),
        to_field_name="name",
        required=False,
        label="AWS account",
        empty_label=f"{DEFAULT_NAME} (the console's own)",
        help_text="Where its stack is built: the console's own account or a registered one "
        "that lists the region. It cannot change later.",
    )


class SecretTextarea(forms.Textarea):
    """A textarea that never sends its value back to the browser (as PasswordInput does):
    a form shown again keeps what was typed server-side (tenants.secret_hold)."""

    def format_value(self, value):
        return None


def format_pairs(pairs: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted(pairs.items()))


class TenantSpecMixin:
    """Validation shared by onboarding and configuration edits."""

    # Secret values a previous submit of this form gave (tenants.secret_hold): used when
    # the secret input comes back empty, since it is never sent back to the browser.
    held_secrets: dict[str, str]

    def _secret_env(self) -> dict[str, str]:
        text = self.cleaned_data.get("secret_env_text", "")
        pairs = parse_pairs(text, field="secret")
        if not pairs and not text.strip() and self.held_secrets:
            return dict(self.held_secrets)
        return pairs

    def _clean_lambda(self, cleaned: dict) -> None:
        memory = cleaned.get("lambda_memory_mb")
        if memory is not None and not 128 <= memory <= 10240:
            self.add_error("lambda_memory_mb", "Lambda memory must be 128 to 10,240 MB.")
        timeout = cleaned.get("lambda_timeout_s")
        if timeout is not None and not 1 <= timeout <= 900:
            self.add_error("lambda_timeout_s", "Lambda timeout must be 1 to 900 seconds.")
        concurrency = cleaned.get("reserved_concurrency")
        if concurrency is not None and concurrency < 1:
            self.add_error(
                "reserved_concurrency",
                "Use Suspend to stop a tenant; reserved concurrency here is at least 1, or "
                "blank for unreserved.",
            )
        env = cleaned.get("env_vars_text")
        secret_env = cleaned.get("secret_env_text") or {}
        if isinstance(env, dict):
            overlap = set(env) & set(secret_env)
            if overlap:
                self.add_error(
                    "secret_env_text", f"Given both plain and secret: {', '.join(sorted(overlap))}."
                )

    def _clean_contract(self, tenant: Tenant, version: str) -> None:
        """The checks that need the release: its settings against this tenant's."""
        for field, message in tenant_problems(tenant, release_for(version)):
            if field == "function_in_vpc":
                field = "outside_vpc"
            if field is not None and field not in self.fields:
                field = None
            if field is None or field not in self.errors:
                self.add_error(field, message)


class TenantOnboardForm(TenantSpecMixin, forms.ModelForm):
    env_vars_text = forms.CharField(
        label="Environment variables",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "LOG_LEVEL=info"}),
        help_text="NAME=value, one per line. Stored in the console and on the function.",
    )
    secret_env_text = forms.CharField(
        label="Secret environment variables",
        required=False,
        widget=SecretTextarea(attrs={"rows": 3, "placeholder": "STRIPE_KEY=sk_live_..."}),
        help_text="NAME=value, one per line. Values go to Secrets Manager only, never to the "
        "console's database; the function reads them through ENV_SECRET_ARN.",
    )
    tags_text = forms.CharField(
        label="Tags",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "plan=enterprise"}),
        help_text="key=value, one per line; rollouts can target tags.",
    )
    release = forms.ChoiceField(
        required=False,
        label="First release",
        help_text="What the function runs once it is up; later releases come by rollouts.",
    )
    outside_vpc = outside_vpc_field()
    app_overrides_text = forms.CharField(
        label="Overrides of the release's app settings (JSON)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": '{"api": {"stage": "prod"}}'}),
        help_text="What this tenant does differently from the app settings on the release's "
        "page: runtime, handler, api (payload_format, stage, cors, access_logs, "
        "throttle_rate, throttle_burst), alarms (per alarm: threshold, period_s, "
        "evaluation_periods, datapoints, enabled). Blank: none. The full list is in "
        "docs/app-contract.md of the console's repository.",
    )
    restore_from = forms.CharField(
        required=False,
        label="Restore data from (s3:// URI of a pg_dump)",
        help_text="Once the stack is up, this dump is restored into the new database as the "
        "tenant's role (Restore data on the tenant's page does the same later). Blank: an "
        "empty database with the release's migrations.",
    )
    restore_mode = forms.ChoiceField(
        required=False,
        choices=[("replace", "Replace what the dump contains"), ("data-only", "Data only")],
        initial="replace",
        label="Restore mode",
    )
    form_token = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Tenant
        fields = [
            "name",
            "slug",
            "contact_email",
            "region",
            "aws_account",
            "ring",
            "isolation",
            "db_instance_class",
            "db_allocated_storage_gb",
            "db_backup_retention_days",
            "db_storage_encrypted",
            "db_deletion_protection",
            "serverless_min_acu",
            "serverless_max_acu",
            "use_rds_proxy",
            "db_engine_version",
            "db_multi_az",
            "db_backup_window",
            "db_maintenance_window",
            "serverless_seconds_until_auto_pause",
            "lambda_memory_mb",
            "lambda_timeout_s",
            "reserved_concurrency",
            "log_retention_days",
            "alarm_topic",
            "expected_requests_month",
            "expected_duration_ms",
            "custom_domain",
            "certificate_arn",
        ]
        widgets = {"isolation": forms.RadioSelect}
        labels = {
            "db_engine_version": "PostgreSQL version",
            "db_multi_az": "Multi-AZ (a standby in a second zone)",
            "db_backup_window": "Backup window (UTC)",
            "db_maintenance_window": "Maintenance window (UTC)",
            "serverless_seconds_until_auto_pause": "Pause after idle (s)",
            "log_retention_days": "Log retention (days)",
            "alarm_topic": "Alarms notify",
            "expected_requests_month": "Expected requests a month",
            "expected_duration_ms": "Average request duration (ms)",
            "db_allocated_storage_gb": "Storage (GB)",
            "db_backup_retention_days": "Backup retention (days)",
            "serverless_min_acu": "Minimum ACU (0 lets it pause)",
            "serverless_max_acu": "Maximum ACU",
            "use_rds_proxy": "Connect through an RDS Proxy",
            "lambda_memory_mb": "Memory (MB)",
            "lambda_timeout_s": "Timeout (s)",
            "certificate_arn": "ACM certificate ARN",
        }

    def __init__(self, *args, held_secrets: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.held_secrets = held_secrets or {}
        regions = settings.OPSCONSOLE_REGIONS
        self.fields["region"] = forms.ChoiceField(
            choices=[(r, r) for r in regions], initial=regions[0]
        )
        self.fields["aws_account"] = aws_account_field()
        classes = sorted(settings.PRICE_TABLE["us-east-1"]["rds_instance_hour"])
        self.fields["db_instance_class"] = forms.ChoiceField(
            choices=[(c, c) for c in classes], initial="db.t4g.micro", label="Instance class"
        )
        try:
            versions = release_source.get().versions()
            newest = release_source.get().newest_version()
        except RuntimeError:
            versions, newest = [], None
        # The version itself: "newest" says nothing to someone choosing.
        self.fields["release"].choices = [
            ("", f"{newest}, the one new tenants start on" if newest else "None registered yet")
        ] + [(v, v) for v in versions]
        _release_help(self, "")
        self.fields["alarm_topic"].required = False
        slug = self.fields["slug"]
        slug.help_text = (
            "Lowercase letters, digits and single hyphens, starting with a letter, at most 40. "
            "Every AWS name is made from it and it cannot change."
        )
        # No maxlength: a browser cuts a longer pasted slug short without a word, and the
        # name every AWS resource gets would be one nobody chose. Refused instead, here,
        # and counted as it is typed (static/js/onboard.js reads data-max-length).
        slug.widget.attrs.pop("maxlength", None)
        slug.widget.attrs["data-max-length"] = str(slug.max_length)
        slug.error_messages["max_length"] = (
            "At most %(limit_value)d characters, and this one has %(show_value)d. Nothing "
            "was cut off: shorten it yourself, since every AWS name is made from it."
        )

    def clean_app_overrides_text(self) -> dict:
        return parse_overrides_text(self.cleaned_data.get("app_overrides_text", ""))

    def clean_alarm_topic(self) -> str:
        return self.cleaned_data.get("alarm_topic") or AlarmTopicChoice.NONE

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"].strip()
        if not naming.SLUG_RE.match(slug):
            raise forms.ValidationError(
                "Use lowercase letters, digits and single hyphens, start with a letter, and "
                "keep it to 40 characters."
            )
        if slug in naming.RESERVED_SLUGS:
            raise forms.ValidationError(f"{slug!r} is reserved; choose another.")
        return slug

    def clean_region(self) -> str:
        region = self.cleaned_data["region"]
        if region not in settings.OPSCONSOLE_REGIONS:
            raise forms.ValidationError(f"{region} is not an allowed region.")
        return region

    def clean_env_vars_text(self) -> dict[str, str]:
        return parse_pairs(self.cleaned_data.get("env_vars_text", ""), field="env")

    def clean_secret_env_text(self) -> dict[str, str]:
        return self._secret_env()

    def _clean_account(self, cleaned: dict) -> None:
        account, region = cleaned.get("aws_account"), cleaned.get("region")
        if account is not None and region and not account.lists_region(region):
            self.add_error(
                "aws_account",
                f"{account.name} does not list {region} (it has "
                f"{', '.join(account.regions) or 'no region'}): choose another account or "
                "add the region to it on the AWS accounts page.",
            )

    def clean_tags_text(self) -> dict[str, str]:
        tags: dict[str, str] = {}
        for number, raw in enumerate(self.cleaned_data.get("tags_text", "").splitlines(), 1):
            line = raw.strip()
            if not line:
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise forms.ValidationError(f"Line {number}: expected key=value.")
            problem = tag_problem(key.strip(), value.strip())
            if problem:
                raise forms.ValidationError(f"Line {number}: {problem}.")
            tags[key.strip()] = value.strip()
        if len(tags) > MAX_TAGS:
            raise forms.ValidationError(
                f"At most {MAX_TAGS} tags: AWS allows 50 a resource, and the console adds two."
            )
        return tags

    def clean_custom_domain(self) -> str:
        domain = self.cleaned_data.get("custom_domain", "").strip().lower().rstrip(".")
        if domain and not DOMAIN_RE.match(domain):
            raise forms.ValidationError("Not a valid domain name.")
        return domain

    def clean(self):
        cleaned = super().clean()
        self._clean_lambda(cleaned)
        self._clean_account(cleaned)
        isolation = cleaned.get("isolation")
        if isolation == Isolation.DEDICATED:
            storage = cleaned.get("db_allocated_storage_gb")
            if storage is not None and not 20 <= storage <= 65536:
                self.add_error("db_allocated_storage_gb", "Storage must be 20 to 65,536 GB.")
            retention = cleaned.get("db_backup_retention_days")
            if retention is not None and retention > 35:
                self.add_error("db_backup_retention_days", "Backups are kept 0 to 35 days.")
        if isolation == Isolation.SERVERLESS:
            low, high = cleaned.get("serverless_min_acu"), cleaned.get("serverless_max_acu")
            if low is not None and high is not None:
                if low < 0 or high < 1 or high > 256 or low > high:
                    self.add_error(
                        "serverless_max_acu",
                        "Capacity: minimum 0 to maximum, maximum 1 to 256 ACU.",
                    )
                if (low * 2) % 1 or (high * 2) % 1:
                    self.add_error("serverless_min_acu", "ACU come in steps of 0.5.")
        if isolation == Isolation.SHARED and cleaned.get("use_rds_proxy"):
            self.add_error("use_rds_proxy", "A shared-instance tenant uses the shared endpoint.")
        restore_from = (cleaned.get("restore_from") or "").strip()
        if restore_from and isolation == Isolation.NONE:
            self.add_error(
                "restore_from", "This tenant brings its own database: nothing to restore into."
            )
        elif restore_from and not restore_from.startswith("s3://"):
            self.add_error("restore_from", "An s3://bucket/key URI.")
        domain, cert = cleaned.get("custom_domain"), cleaned.get("certificate_arn", "").strip()
        if domain and not cert:
            self.add_error("certificate_arn", "A custom domain needs its ACM certificate ARN.")
        if cert and not ACM_ARN_RE.match(cert):
            self.add_error("certificate_arn", "Not an ACM certificate ARN.")
        if cert and domain and f":acm:{cleaned.get('region')}:" not in cert:
            self.add_error("certificate_arn", "The certificate must be in the tenant's region.")
        if not self.errors:
            self._clean_contract(self.build_tenant(), cleaned.get("release") or "")
        return cleaned

    def build_tenant(self) -> Tenant:
        """The unsaved tenant the form describes (for the plan and for onboarding)."""
        tenant = self.save(commit=False)
        tenant.env_vars = self.cleaned_data["env_vars_text"]
        tenant.secret_env_names = sorted(self.cleaned_data["secret_env_text"])
        tenant.tags = self.cleaned_data["tags_text"]
        tenant.desired_release = self.cleaned_data.get("release") or ""
        tenant.app_overrides = self.cleaned_data.get("app_overrides_text") or {}
        tenant.function_in_vpc = not self.cleaned_data.get("outside_vpc")
        if tenant.isolation != Isolation.SERVERLESS:
            tenant.serverless_min_acu = Decimal("0.5")
        return tenant


class TenantConfigForm(TenantSpecMixin, forms.ModelForm):
    """What may change after onboarding; applied by a reconcile job."""

    env_vars_text = forms.CharField(
        label="Environment variables", required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    secret_env_text = forms.CharField(
        label="Set or replace secret environment variables",
        required=False,
        widget=SecretTextarea(attrs={"rows": 3}),
        help_text="NAME=value lines set or replace those secrets; the others stay as they are. "
        "Current values are never shown.",
    )
    remove_secret_env = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Remove secret variables"
    )

    app_overrides_text = TenantOnboardForm.base_fields["app_overrides_text"]
    outside_vpc = outside_vpc_field()
    # Keys the secret values held between two submits (tenants.secret_hold).
    form_token = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Tenant
        fields = [
            "lambda_memory_mb",
            "lambda_timeout_s",
            "reserved_concurrency",
            "ring",
            "log_retention_days",
            "alarm_topic",
            "db_engine_version",
            "db_multi_az",
            "db_backup_window",
            "db_maintenance_window",
            "serverless_seconds_until_auto_pause",
            "expected_requests_month",
            "expected_duration_ms",
        ]
        labels = TenantOnboardForm.Meta.labels

    def __init__(self, *args, held_secrets: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.held_secrets = held_secrets or {}
        self.fields["env_vars_text"].initial = format_pairs(self.instance.env_vars)
        self.fields["remove_secret_env"].choices = [(n, n) for n in self.instance.secret_env_names]
        overrides = self.instance.app_overrides
        self.fields["app_overrides_text"].initial = (
            json.dumps(overrides, indent=2) if overrides else ""
        )
        _release_help(self, self.instance.desired_release or self.instance.current_release)

    @property
    def changed_data(self) -> list[str]:
        # The token only keys held secret values: it is no change of the tenant's (audit).
        return [name for name in super().changed_data if name != "form_token"]

    def clean_app_overrides_text(self) -> dict:
        return parse_overrides_text(self.cleaned_data.get("app_overrides_text", ""))

    def clean_env_vars_text(self) -> dict[str, str]:
        return parse_pairs(self.cleaned_data.get("env_vars_text", ""), field="env")

    def clean_secret_env_text(self) -> dict[str, str]:
        return self._secret_env()

    def clean(self):
        cleaned = super().clean()
        self._clean_lambda(cleaned)
        if not self.errors:
            tenant = self.instance
            for name in self.Meta.fields:
                setattr(tenant, name, cleaned.get(name))
            tenant.env_vars = cleaned.get("env_vars_text") or {}
            tenant.app_overrides = cleaned.get("app_overrides_text") or {}
            tenant.function_in_vpc = not cleaned.get("outside_vpc")
            self._clean_contract(tenant, tenant.desired_release or tenant.current_release)
        return cleaned

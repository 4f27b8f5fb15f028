"""Step 9: alarms on the function, the API and the database.

Each kind's threshold, period, evaluation periods, datapoints and whether it exists at all
come from the release's settings and the tenant's overrides
(``tenants.app_settings.effective_alarms``); its actions from the tenant's alarm topic
(``tenants.provisioning.alarm_topic``). Rules are checked (``alarm_problems``) before any
AWS call: CloudWatch would refuse some of them only after other alarms had been written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from pydantic import ValidationError

from opsconsole.aws import cloudwatch
from tenants import naming, release_source, resources
from tenants.app_settings import AppSettings, effective_alarms, parse_overrides, problems
from tenants.models import Isolation, Tenant
from tenants.provisioning import alarm_topic
from tenants.provisioning.api import api_stage
from tenants.provisioning.common import Drift, tags_for, tenant_of
from tenants.validation import register_check

# Fields we set and compare; CloudWatch adds its own (state, ARNs, timestamps).
_COMPARED = (
    "Namespace",
    "MetricName",
    "Statistic",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "Dimensions",
    "ActionsEnabled",
    "AlarmActions",
    "OKActions",
)
DB_KINDS = frozenset({"db-cpu", "db-connections"})
# CloudWatch: Period x EvaluationPeriods of a metric alarm at most one day (seven days
# only for periods of an hour or more; the console keeps every alarm to a day, since an
# alarm that needs a week of data says nothing a canary could wait for).
MAX_WINDOW_S = 86400


@dataclass(frozen=True)
class Metric:
    label: str
    namespace: str
    name: str
    statistic: str
    operator: str
    # Bounds a threshold can take for this metric (CPU is a percentage).
    low: float = 0.0
    high: float | None = None


METRICS = {
    "errors": Metric("Errors", "AWS/Lambda", "Errors", "Sum", "GreaterThanThreshold"),
    "throttles": Metric(
        "Throttles", "AWS/Lambda", "Throttles", "Sum", "GreaterThanOrEqualToThreshold"
    ),
    "api-5xx": Metric("API 5xx responses", "AWS/ApiGateway", "5xx", "Sum", "GreaterThanThreshold"),
    "db-cpu": Metric(
        "Database CPU %", "AWS/RDS", "CPUUtilization", "Average", "GreaterThanThreshold", high=100
    ),
    "db-connections": Metric(
        "Database connections", "AWS/RDS", "DatabaseConnections", "Maximum", "GreaterThanThreshold"
    ),
}


def _database_dimension(tenant: Tenant) -> dict[str, str]:
    if tenant.isolation == Isolation.DEDICATED:
        return {"Name": "DBInstanceIdentifier", "Value": naming.db_instance_id(tenant.slug)}
    if tenant.isolation == Isolation.SERVERLESS:
        return {"Name": "DBClusterIdentifier", "Value": naming.db_cluster_id(tenant.slug)}
    # A shared-instance tenant watches the instance it shares: a noisy neighbour shows.
    return {"Name": "DBInstanceIdentifier", "Value": settings.BASELINE["shared_db_instance"]}


def alarm_names(tenant: Tenant) -> list[str]:
    """Every alarm name the tenant can have, without a query: DescribeAlarms and
    DeleteAlarms skip missing ones."""
    return [naming.alarm_name(tenant.slug, what) for what in naming.ALARM_KINDS]


def app_settings_of(tenant: Tenant) -> AppSettings:
    """The settings of the release the tenant runs or is going to (defaults before any)."""
    version = tenant.desired_release or tenant.current_release
    if not version:
        return AppSettings()
    return release_source.get().artifact(version, region=tenant.region).app_settings


def rules_for(tenant: Tenant, app: AppSettings) -> dict[str, dict]:
    return effective_alarms(app, parse_overrides(tenant.app_overrides))


def _wanted(tenant: Tenant, kind: str, rule: dict) -> bool:
    """Whether the kind gets an alarm: not when its rule disables it, and no database
    alarm for a tenant without a database of the console's."""
    if not rule.get("enabled", True):
        return False
    return not (kind in DB_KINDS and tenant.isolation == Isolation.NONE)


def _numbers(rule: dict) -> tuple[int, int, int]:
    """Period (s), evaluation periods and datapoints to alarm."""
    return int(rule["period_s"]), int(rule["evaluation_periods"]), int(rule["datapoints"])


def alarm_problems(tenant: Tenant, app_settings: AppSettings) -> list[str]:
    """What CloudWatch (or the console) would refuse in the tenant's alarm rules, as
    ``alarms.<kind>: message``; empty when every rule can be applied."""
    try:
        rules = rules_for(tenant, app_settings)
    except ValidationError as exc:
        return problems(exc, prefix="app_overrides.")
    out = []
    for kind, rule in rules.items():
        if not _wanted(tenant, kind, rule):
            continue
        where = f"alarms.{kind}"
        metric = METRICS[kind]
        threshold = float(rule["threshold"])
        period, n, m = _numbers(rule)
        if not math.isfinite(threshold):
            out.append(f"{where}: threshold must be a number")
        elif threshold < metric.low or (metric.high is not None and threshold > metric.high):
            high = f" and {metric.high:g}" if metric.high is not None else ""
            above = f"between {metric.low:g}{high}" if high else f"at least {metric.low:g}"
            out.append(f"{where}: threshold {threshold:g} must be {above}")
        if period < 60:
            # Lambda, API Gateway and RDS (basic monitoring) publish one datapoint a
            # minute: a shorter period would have no data in most periods.
            out.append(f"{where}: period_s {period}: {metric.namespace} publishes once a minute")
        if m > n:
            out.append(f"{where}: datapoints ({m}) exceeds evaluation_periods ({n})")
        if period * n > MAX_WINDOW_S:
            out.append(
                f"{where}: period_s x evaluation_periods is {period * n} s; CloudWatch "
                f"evaluates at most one day ({MAX_WINDOW_S} s)"
            )
    return out


def _form_problems(tenant: Tenant, app: AppSettings) -> list[tuple[str, str]]:
    # Reported on the overrides field: there a tenant corrects a bad rule, its release's
    # or its own (the release's alone are merged with the defaults only here).
    return [("app_overrides_text", p) for p in alarm_problems(tenant, app)]


register_check(_form_problems)


class AlarmRulesError(RuntimeError):
    """The tenant's alarm rules cannot be applied (nothing was written)."""


def alarm_specs(tenant: Tenant, app: AppSettings | None = None) -> list[dict[str, Any]]:
    """PutMetricAlarm's arguments for every alarm the tenant should have."""
    app = app if app is not None else app_settings_of(tenant)
    rules = rules_for(tenant, app)
    slug = tenant.slug
    function = naming.function_name(slug)
    api = resources.find(tenant, kind="api")
    topic = alarm_topic.topic_arn_for(tenant)
    dimensions = {
        "errors": [
            {"Name": "FunctionName", "Value": function},
            {"Name": "Resource", "Value": f"{function}:{naming.ALIAS}"},
        ],
        "db-cpu": [_database_dimension(tenant)],
        "db-connections": [_database_dimension(tenant)],
    }
    dimensions["throttles"] = dimensions["errors"]
    if api is not None:
        dimensions["api-5xx"] = [
            {"Name": "ApiId", "Value": api.identifier},
            {"Name": "Stage", "Value": api_stage(tenant)},
        ]
    specs = []
    for kind in naming.ALARM_KINDS:
        rule = rules[kind]
        if kind not in dimensions or not _wanted(tenant, kind, rule):
            continue
        metric = METRICS[kind]
        specs.append(
            {
                "AlarmName": naming.alarm_name(slug, kind),
                "AlarmDescription": f"opsconsole tenant {slug}",
                "Namespace": metric.namespace,
                "MetricName": metric.name,
                "Statistic": metric.statistic,
                "Threshold": float(rule["threshold"]),
                "ComparisonOperator": metric.operator,
                "Dimensions": dimensions[kind],
                "Period": int(rule["period_s"]),
                "EvaluationPeriods": int(rule["evaluation_periods"]),
                "DatapointsToAlarm": int(rule["datapoints"]),
                "TreatMissingData": "notBreaching",
                "ActionsEnabled": topic is not None,
                "AlarmActions": [topic] if topic else [],
                "OKActions": [topic] if topic else [],
            }
        )
    return specs


def _minutes(seconds: int) -> str:
    if seconds % 60:
        return f"{seconds} seconds"
    minutes = seconds // 60
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _window(rule: dict) -> str:
    period, n, m = _numbers(rule)
    if n == 1:
        return f"in {_minutes(period)}"
    if period == 60:
        return f"in {m} of the last {n} minutes"
    return f"in {m} of the last {n} periods of {_minutes(period)}"


def alarms_plan(tenant: Tenant, app_settings: AppSettings) -> list[str]:
    """One line per alarm kind: what raises it and who it notifies. No AWS call."""
    try:
        rules = rules_for(tenant, app_settings)
    except ValidationError as exc:
        return problems(exc, prefix="app_overrides.")
    destination = alarm_topic.destination_text(tenant)
    lines = []
    for kind in naming.ALARM_KINDS:
        rule, metric = rules[kind], METRICS[kind]
        if kind in DB_KINDS and tenant.isolation == Isolation.NONE:
            lines.append(f"{metric.label}: no alarm (the app brings its own database)")
            continue
        if not rule.get("enabled", True):
            lines.append(f"{metric.label}: disabled (no alarm)")
            continue
        op = "at or above" if metric.operator.startswith("GreaterThanOrEqual") else "above"
        lines.append(
            f"{metric.label} {op} {float(rule['threshold']):g} {_window(rule)} → {destination}"
        )
    return lines


def _differs(existing: dict | None, spec: dict) -> bool:
    if existing is None:
        return True
    for key in _COMPARED:
        have, want = existing.get(key), spec.get(key)
        if key == "Dimensions":
            have = sorted((d["Name"], d["Value"]) for d in have or [])
            want = sorted((d["Name"], d["Value"]) for d in want or [])
        elif key in ("AlarmActions", "OKActions"):
            have, want = sorted(have or []), sorted(want or [])
        if have != want:
            return True
    return False


def step_alarms(job, step) -> dict:
    tenant = tenant_of(job)
    app = app_settings_of(tenant)
    found = alarm_problems(tenant, app)
    if found:
        raise AlarmRulesError("Alarm rules refused, nothing written: " + "; ".join(found))
    specs = alarm_specs(tenant, app)
    wanted = {s["AlarmName"] for s in specs}
    unwanted = [name for name in alarm_names(tenant) if name not in wanted]
    # Alarms never recorded for this tenant are written without reading them first
    # (PutMetricAlarm creates or overwrites).
    recorded = resources.find(tenant, kind="alarm") is not None
    existing = (
        cloudwatch.describe_alarms(
            names=[s["AlarmName"] for s in specs] + unwanted, region=tenant.region
        )
        if recorded
        else {}
    )
    written = []
    for spec in specs:
        name = spec["AlarmName"]
        if _differs(existing.get(name), spec):
            cloudwatch.put_metric_alarm(spec=spec, tags=tags_for(tenant), region=tenant.region)
            written.append(name)
        arn = (existing.get(name) or {}).get("AlarmArn", "")
        resources.record(
            tenant,
            kind="alarm",
            name=name,
            identifier=name,
            arn=arn,
            details={
                "metric": f"{spec['Namespace']} {spec['MetricName']}",
                "threshold": spec["Threshold"],
                "actions": spec["AlarmActions"],
            },
        )
    # A kind disabled (or without a database to watch) loses its alarm.
    deleted = [name for name in unwanted if name in existing]
    cloudwatch.delete_alarms(names=deleted, region=tenant.region)
    for name in unwanted:
        resources.mark(tenant, kind="alarm", name=name, status="deleted")
    return {"alarms": len(specs), "written": written, "deleted": deleted}


def alarm_drift(tenant: Tenant) -> list[Drift]:
    try:
        specs = alarm_specs(tenant)
    except (RuntimeError, LookupError, ValidationError) as exc:
        return [
            Drift("alarm", naming.resource_prefix(tenant.slug), "rules", "computable", str(exc))
        ]
    wanted = {s["AlarmName"] for s in specs}
    unwanted = [name for name in alarm_names(tenant) if name not in wanted]
    existing = cloudwatch.describe_alarms(names=sorted(wanted) + unwanted, region=tenant.region)
    drifts = []
    for spec in specs:
        have = existing.get(spec["AlarmName"])
        if have is None:
            drifts.append(Drift("alarm", spec["AlarmName"], "exists", "present", "missing"))
            continue
        if _differs({k: v for k, v in have.items() if k not in _ACTION_KEYS}, _no_actions(spec)):
            drifts.append(
                Drift("alarm", spec["AlarmName"], "definition", "as specified", "differs")
            )
        if any(_differs_key(have, spec, key) for key in _ACTION_KEYS):
            drifts.append(
                Drift(
                    "alarm",
                    spec["AlarmName"],
                    "actions",
                    _actions_text(spec),
                    _actions_text(have),
                )
            )
    for name in unwanted:
        if name in existing:
            drifts.append(Drift("alarm", name, "exists", "absent (not wanted)", "present"))
    return drifts


_ACTION_KEYS = ("ActionsEnabled", "AlarmActions", "OKActions")


def _no_actions(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in _ACTION_KEYS}


def _differs_key(have: dict, spec: dict, key: str) -> bool:
    a, b = have.get(key), spec.get(key)
    if key != "ActionsEnabled":
        a, b = sorted(a or []), sorted(b or [])
    return a != b


def _actions_text(alarm: dict) -> str:
    if not alarm.get("ActionsEnabled"):
        return "actions disabled"
    return ", ".join(sorted(set(alarm.get("AlarmActions") or []))) or "no actions"


def step_delete_alarms(job, step) -> dict:
    tenant = tenant_of(job)
    names = alarm_names(tenant)
    cloudwatch.delete_alarms(names=names, region=tenant.region)
    for name in names:
        resources.mark(tenant, kind="alarm", name=name, status="deleted")
    return {"deleted": names}

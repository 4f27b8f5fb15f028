"""Step 9: alarms on the function, the API and the database."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from opsconsole.aws import cloudwatch
from tenants import naming, resources
from tenants.models import Isolation, Tenant
from tenants.provisioning.common import Drift, tags_for, tenant_of

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
)


def _database_dimension(tenant: Tenant) -> dict[str, str]:
    if tenant.isolation == Isolation.DEDICATED:
        return {"Name": "DBInstanceIdentifier", "Value": naming.db_instance_id(tenant.slug)}
    if tenant.isolation == Isolation.SERVERLESS:
        return {"Name": "DBClusterIdentifier", "Value": naming.db_cluster_id(tenant.slug)}
    # A shared-instance tenant watches the instance it shares: a noisy neighbour shows.
    return {"Name": "DBInstanceIdentifier", "Value": settings.BASELINE["shared_db_instance"]}


def alarm_names(tenant: Tenant) -> list[str]:
    """The tenant's alarm names, without a query: DescribeAlarms skips missing ones."""
    return [naming.alarm_name(tenant.slug, what) for what in naming.ALARM_KINDS]


def alarm_specs(tenant: Tenant) -> list[dict[str, Any]]:
    slug = tenant.slug
    function = naming.function_name(slug)
    api = resources.find(tenant, kind="api")
    fn_dims = [
        {"Name": "FunctionName", "Value": function},
        {"Name": "Resource", "Value": f"{function}:{naming.ALIAS}"},
    ]
    # One breaching minute of the last three raises the alarm. The alarms are what a
    # canary and a deployment's bake watch (a few minutes each) stop on, so "5 out of 5
    # minutes" would let a broken release finish its canary before the alarm could fire;
    # three clean minutes bring it back to OK.
    base = {
        "Period": 60,
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 1,
        "TreatMissingData": "notBreaching",
        "ActionsEnabled": False,
    }
    specs = [
        {
            "AlarmName": naming.alarm_name(slug, "errors"),
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Statistic": "Sum",
            "Threshold": 5.0,
            "ComparisonOperator": "GreaterThanThreshold",
            "Dimensions": fn_dims,
            **base,
        },
        {
            "AlarmName": naming.alarm_name(slug, "throttles"),
            "Namespace": "AWS/Lambda",
            "MetricName": "Throttles",
            "Statistic": "Sum",
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Dimensions": fn_dims,
            **base,
        },
        {
            "AlarmName": naming.alarm_name(slug, "db-cpu"),
            "Namespace": "AWS/RDS",
            "MetricName": "CPUUtilization",
            "Statistic": "Average",
            "Threshold": 80.0,
            "ComparisonOperator": "GreaterThanThreshold",
            "Dimensions": [_database_dimension(tenant)],
            **base,
        },
        {
            "AlarmName": naming.alarm_name(slug, "db-connections"),
            "Namespace": "AWS/RDS",
            "MetricName": "DatabaseConnections",
            "Statistic": "Maximum",
            "Threshold": 80.0,
            "ComparisonOperator": "GreaterThanThreshold",
            "Dimensions": [_database_dimension(tenant)],
            **base,
        },
    ]
    if api is not None:
        specs.append(
            {
                "AlarmName": naming.alarm_name(slug, "api-5xx"),
                "Namespace": "AWS/ApiGateway",
                "MetricName": "5xx",
                "Statistic": "Sum",
                "Threshold": 5.0,
                "ComparisonOperator": "GreaterThanThreshold",
                "Dimensions": [
                    {"Name": "ApiId", "Value": api.identifier},
                    {"Name": "Stage", "Value": "$default"},
                ],
                **base,
            }
        )
    for spec in specs:
        spec["AlarmDescription"] = f"opsconsole tenant {slug}"
    return specs


def _differs(existing: dict | None, spec: dict) -> bool:
    if existing is None:
        return True
    for key in _COMPARED:
        have, want = existing.get(key), spec.get(key)
        if key == "Dimensions":
            have = sorted((d["Name"], d["Value"]) for d in have or [])
            want = sorted((d["Name"], d["Value"]) for d in want or [])
        if have != want:
            return True
    return False


def step_alarms(job, step) -> dict:
    tenant = tenant_of(job)
    specs = alarm_specs(tenant)
    # Alarms never recorded for this tenant are written without reading them first
    # (PutMetricAlarm creates or overwrites).
    recorded = resources.find(tenant, kind="alarm") is not None
    existing = (
        cloudwatch.describe_alarms(names=[s["AlarmName"] for s in specs], region=tenant.region)
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
            details={"metric": f"{spec['Namespace']} {spec['MetricName']}"},
        )
    return {"alarms": len(specs), "written": written}


def alarm_drift(tenant: Tenant) -> list[Drift]:
    specs = alarm_specs(tenant)
    existing = cloudwatch.describe_alarms(
        names=[s["AlarmName"] for s in specs], region=tenant.region
    )
    drifts = []
    for spec in specs:
        have = existing.get(spec["AlarmName"])
        if have is None:
            drifts.append(Drift("alarm", spec["AlarmName"], "exists", "present", "missing"))
        elif _differs(have, spec):
            drifts.append(
                Drift("alarm", spec["AlarmName"], "definition", "as specified", "differs")
            )
    return drifts


def step_delete_alarms(job, step) -> dict:
    tenant = tenant_of(job)
    names = [s["AlarmName"] for s in alarm_specs(tenant)]
    cloudwatch.delete_alarms(names=names, region=tenant.region)
    for name in names:
        resources.mark(tenant, kind="alarm", name=name, status="deleted")
    return {"deleted": names}

"""Alarm rules from the release and the tenant, and the SNS topic they notify, against
in-process moto (one shared tenant database each on the local PostgreSQL)."""

from __future__ import annotations

import json

import pytest

from deployments.models import Release
from opsconsole.aws import cloudwatch
from opsconsole.aws.clients import client
from opsconsole.jobs.models import Job, JobStatus
from opsconsole.jobs.runner import job_execute
from opsconsole.jobs.services import job_create
from tenants import release_source
from tenants.models import AlarmSubscription, Isolation, Tenant, TenantResource
from tenants.plan_contract import contract_sections
from tenants.provisioning.alarms import alarm_problems, alarms_plan, app_settings_of
from tenants.validation import tenant_problems
from tests.tenants.conftest import drop_tenant_databases, make_tenant, run_job

pytestmark = pytest.mark.usefixtures("seeded", "hc_dbs")

EMAIL = "oncall@example.com"
HOOK = "https://hooks.example.com/alarms"


@pytest.fixture
def hc_dbs():
    drop_tenant_databases("tenant_hc")
    yield
    drop_tenant_databases("tenant_hc")


def release_alarms(seeded, alarms: dict) -> None:
    Release.objects.filter(version=seeded["release_version"]).update(
        app_settings={"alarms": alarms}
    )


def alarms_of(slug: str) -> dict[str, dict]:
    prefix = f"opsconsole-{slug}-"
    found = client("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    return {a["AlarmName"].removeprefix(prefix): a for a in found}


def provisioned(slug: str, **spec) -> Tenant:
    tenant = make_tenant(slug, **spec)
    job = run_job("tenant_provision", tenant)
    assert job.status == JobStatus.SUCCEEDED, [(s.name, s.error) for s in job.steps.all()]
    tenant.refresh_from_db()
    return tenant


def drift_of(tenant: Tenant) -> set[tuple[str, str, str]]:
    output = run_job("tenant_drift_check", tenant).steps.get().output
    return {(d["kind"], d["name"], d["field"]) for d in output["drift"]}


def subscribed(topic_arn: str) -> set[tuple[str, str]]:
    items = client("sns").list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    return {(s["Protocol"], s["Endpoint"]) for s in items}


def run_fleet_job() -> Job:
    job = job_create(
        kind="fleet_alarm_topic", subject_type="fleet", subject_id="alarm-topic", unique=False
    )
    job_execute(job.pk, owner="test-worker")
    job.refresh_from_db()
    return job


def test_thresholds_come_from_the_release_then_the_tenant(seeded):
    release_alarms(
        seeded,
        {
            "errors": {"threshold": 10, "period_s": 300, "evaluation_periods": 1},
            "db-cpu": {"threshold": 90},
        },
    )
    tenant = provisioned(
        "hc-rules",
        app_overrides={"alarms": {"errors": {"threshold": 20}, "throttles": {"datapoints": 2}}},
    )
    alarms = alarms_of("hc-rules")
    assert set(alarms) == {"errors", "throttles", "api-5xx", "db-cpu", "db-connections"}
    errors = alarms["errors"]
    # The tenant's threshold over the release's; the release's period over the default.
    assert (errors["Threshold"], errors["Period"], errors["EvaluationPeriods"]) == (20.0, 300, 1)
    assert (alarms["throttles"]["DatapointsToAlarm"], alarms["throttles"]["Threshold"]) == (2, 1)
    assert alarms["db-cpu"]["Threshold"] == 90.0
    assert alarms["db-connections"]["Threshold"] == 80.0  # the console's default
    assert all(not a["ActionsEnabled"] and not a["AlarmActions"] for a in alarms.values())
    stage = {d["Name"]: d["Value"] for d in alarms["api-5xx"]["Dimensions"]}["Stage"]
    assert stage == "$default"

    lines = alarms_plan(tenant, app_settings_of(tenant))
    assert lines[0] == "Errors above 20 in 5 minutes → nobody (the console shows it)"
    assert "Throttles at or above 1 in 2 of the last 3 minutes" in lines[1]


def test_a_disabled_kind_loses_its_alarm_and_drift_reports_it_back(seeded):
    tenant = provisioned("hc-off")
    assert "throttles" in alarms_of("hc-off")
    Tenant.objects.filter(pk=tenant.pk).update(
        app_overrides={"alarms": {"throttles": {"enabled": False}}}
    )
    tenant.refresh_from_db()
    assert run_job("tenant_reconcile", tenant).status == JobStatus.SUCCEEDED
    assert "throttles" not in alarms_of("hc-off")
    record = TenantResource.objects.get(
        tenant=tenant, kind="alarm", name="opsconsole-hc-off-throttles"
    )
    assert record.status == "deleted"
    assert drift_of(tenant) == set()
    assert "Throttles: disabled (no alarm)" in alarms_plan(tenant, app_settings_of(tenant))

    # Someone puts it back by hand: drift says it should not be there.
    client("cloudwatch").put_metric_alarm(
        AlarmName="opsconsole-hc-off-throttles",
        Namespace="AWS/Lambda",
        MetricName="Throttles",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    assert ("alarm", "opsconsole-hc-off-throttles", "exists") in drift_of(tenant)
    assert run_job("tenant_reconcile", tenant).status == JobStatus.SUCCEEDED
    assert "throttles" not in alarms_of("hc-off")


def test_alarms_notify_the_tenants_topic_and_subscriptions_converge():
    tenant = make_tenant("hc-page", alarm_topic="tenant")
    AlarmSubscription.objects.create(tenant=tenant, protocol="email", endpoint=EMAIL)
    AlarmSubscription.objects.create(tenant=tenant, protocol="https", endpoint=HOOK)
    assert run_job("tenant_provision", tenant).status == JobStatus.SUCCEEDED

    topic = TenantResource.objects.get(tenant=tenant, kind="alarm_topic")
    assert topic.name == "opsconsole-hc-page-alarms" and topic.arn.endswith(":" + topic.name)
    sns = client("sns")
    tags = {t["Key"]: t["Value"] for t in sns.list_tags_for_resource(ResourceArn=topic.arn)["Tags"]}
    assert tags["Tenant"] == "hc-page" and tags["ManagedBy"] == "opsconsole"
    policy = json.loads(sns.get_topic_attributes(TopicArn=topic.arn)["Attributes"]["Policy"])
    [publish] = [s for s in policy["Statement"] if s["Principal"].get("Service")]
    assert publish["Principal"]["Service"] == "cloudwatch.amazonaws.com"
    assert publish["Condition"]["ArnLike"]["aws:SourceArn"].endswith(":alarm:opsconsole-hc-page-*")

    for alarm in alarms_of("hc-page").values():
        assert alarm["ActionsEnabled"] is True
        assert alarm["AlarmActions"] == [topic.arn] and alarm["OKActions"] == [topic.arn]
    assert subscribed(topic.arn) == {("email", EMAIL), ("https", HOOK)}
    # moto confirms at once: every row records its subscription's ARN.
    assert all(r.subscription_arn.startswith("arn:aws:sns:") for r in tenant.subscriptions.all())

    # One removed, one added: SNS follows.
    tenant.subscriptions.filter(protocol="email").delete()
    AlarmSubscription.objects.create(tenant=tenant, protocol="email", endpoint="sre@example.com")
    assert run_job("tenant_notifications", tenant).status == JobStatus.SUCCEEDED
    assert subscribed(topic.arn) == {("email", "sre@example.com"), ("https", HOOK)}
    assert drift_of(tenant) == set()

    # Offboarding deletes the tenant's own topic.
    Tenant.objects.filter(pk=tenant.pk).update(status="offboarding")
    assert run_job("tenant_offboard", tenant).status == JobStatus.SUCCEEDED
    topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    assert topic.arn not in topics


def test_fleet_topic_serves_tenants_that_choose_it(seeded):
    AlarmSubscription.objects.create(tenant=None, protocol="email", endpoint=EMAIL)
    AlarmSubscription.objects.create(tenant=None, protocol="https", endpoint=HOOK)
    release_alarms(seeded, {"errors": {"threshold": 10, "period_s": 300, "evaluation_periods": 1}})
    tenant = provisioned("hc-fleet", alarm_topic="fleet")
    arn = alarms_of("hc-fleet")["errors"]["AlarmActions"][0]
    assert arn.endswith(":opsconsole-fleet-alarms")
    assert subscribed(arn) == {("email", EMAIL), ("https", HOOK)}
    assert alarms_plan(tenant, app_settings_of(tenant))[0] == (
        "Errors above 10 in 5 minutes → SNS topic opsconsole-fleet-alarms (2 subscribers)"
    )
    # A fleet subscriber removed: the fleet's job unsubscribes it; no tenant topic exists.
    AlarmSubscription.objects.filter(tenant=None, protocol="email").delete()
    assert run_fleet_job().status == JobStatus.SUCCEEDED
    assert subscribed(arn) == {("https", HOOK)}
    assert not TenantResource.objects.filter(tenant=tenant, kind="alarm_topic").exists()
    # Off the fleet topic: actions off, the fleet's topic stays for the others.
    Tenant.objects.filter(pk=tenant.pk).update(alarm_topic="none")
    tenant.refresh_from_db()
    assert run_job("tenant_notifications", tenant).status == JobStatus.SUCCEEDED
    assert not any(a["ActionsEnabled"] for a in alarms_of("hc-fleet").values())
    assert subscribed(arn) == {("https", HOOK)}


def test_hand_changes_show_as_drift_and_repair_undoes_them():
    tenant = make_tenant("hc-hand", alarm_topic="tenant")
    AlarmSubscription.objects.create(tenant=tenant, protocol="https", endpoint=HOOK)
    assert run_job("tenant_provision", tenant).status == JobStatus.SUCCEEDED
    topic_arn = TenantResource.objects.get(tenant=tenant, kind="alarm_topic").arn
    assert drift_of(tenant) == set()

    cw, sns = client("cloudwatch"), client("sns")
    cw.disable_alarm_actions(AlarmNames=["opsconsole-hc-hand-errors"])
    [sub] = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    sns.set_topic_attributes(
        TopicArn=topic_arn, AttributeName="Policy", AttributeValue=json.dumps({"Statement": []})
    )
    found = drift_of(tenant)
    assert ("alarm", "opsconsole-hc-hand-errors", "actions") in found
    assert ("alarm_topic", "opsconsole-hc-hand-alarms", "subscription https") in found
    assert ("alarm_topic", "opsconsole-hc-hand-alarms", "policy") in found

    assert run_job("tenant_reconcile", tenant).status == JobStatus.SUCCEEDED
    assert drift_of(tenant) == set()


def test_isolation_none_gets_no_database_alarms():
    tenant = provisioned(
        "hc-own",
        isolation=Isolation.NONE,
        function_in_vpc=False,
        env_vars={"DATABASE_URL": "postgres://app@db.example.com/app"},
    )
    assert set(alarms_of("hc-own")) == {"errors", "throttles", "api-5xx"}
    lines = alarms_plan(tenant, app_settings_of(tenant))
    assert "Database CPU %: no alarm (the app brings its own database)" in lines
    assert drift_of(tenant) == set()


def test_bad_rules_are_refused_before_cloudwatch_is_called(monkeypatch):
    tenant = make_tenant(
        "hc-bad",
        app_overrides={
            "alarms": {
                "errors": {"datapoints": 5},
                "throttles": {"period_s": 3600, "evaluation_periods": 25},
                "api-5xx": {"period_s": 10},
                "db-cpu": {"threshold": 150},
                "db-connections": {"threshold": -1},
            }
        },
    )
    found = alarm_problems(tenant, app_settings_of(tenant))
    assert found == [
        "alarms.errors: datapoints (5) exceeds evaluation_periods (3)",
        "alarms.throttles: period_s x evaluation_periods is 90000 s; CloudWatch evaluates at "
        "most one day (86400 s)",
        "alarms.api-5xx: period_s 10: AWS/ApiGateway publishes once a minute",
        "alarms.db-cpu: threshold 150 must be between 0 and 100",
        "alarms.db-connections: threshold -1 must be at least 0",
    ]
    calls = []
    for name in ("put_metric_alarm", "describe_alarms", "delete_alarms"):
        monkeypatch.setattr(cloudwatch, name, lambda *a, _n=name, **k: calls.append(_n))
    job = run_job("tenant_provision", tenant)
    assert job.status == JobStatus.FAILED
    step = job.steps.get(name="alarms")
    assert "datapoints (5) exceeds evaluation_periods (3)" in step.error
    assert calls == []
    # A disabled bad rule is no problem: no alarm, nothing to refuse.
    tenant.app_overrides = {"alarms": {"errors": {"datapoints": 5, "enabled": False}}}
    assert alarm_problems(tenant, app_settings_of(tenant)) == []


def test_the_forms_and_the_plan_see_the_alarm_rules(seeded):
    """The onboarding and edit forms refuse a bad rule on the overrides field; the plan
    (and the tenant page) list each alarm's rule and who it notifies."""
    artifact = release_source.get().artifact(seeded["release_version"], region="us-east-1")
    tenant = Tenant(
        slug="hc-form",
        region="us-east-1",
        desired_release=artifact.version,
        app_overrides={"alarms": {"errors": {"datapoints": 4}}},
    )
    assert (
        "app_overrides_text",
        "alarms.errors: datapoints (4) exceeds evaluation_periods (3)",
    ) in tenant_problems(tenant, artifact)
    tenant.app_overrides = {}
    [alarms] = [s for s in contract_sections(tenant, artifact) if s.title == "Alarms"]
    line = "Errors above 5 in 1 of the last 3 minutes → nobody (the console shows it)"
    assert ("", line) in alarms.rows


def test_the_fleet_topic_says_which_regions_confirmed(db, monkeypatch):
    """An address confirms each region's subscription on its own: the row says where it
    still waits, and is confirmed once every region is."""
    from types import SimpleNamespace

    from tenants.notifications import subscription_status
    from tenants.provisioning import alarm_topic

    row = AlarmSubscription.objects.create(tenant=None, protocol="email", endpoint=EMAIL)
    answers = {
        "us-east-1": "arn:aws:sns:us-east-1:123456789012:opsconsole-fleet-alarms:1",
        "eu-west-1": alarm_topic.PENDING_TEXT,
    }

    def applied(region):
        return {
            "result": SimpleNamespace(
                states={row.pk: answers[region]}, subscribed=[], unsubscribed=[]
            )
        }

    monkeypatch.setattr(alarm_topic, "fleet_regions", lambda: ["eu-west-1", "us-east-1"])
    monkeypatch.setattr(alarm_topic, "apply_fleet_topic", applied)
    alarm_topic.step_fleet_topic(None, None)
    row.refresh_from_db()
    assert row.region_states == answers
    assert subscription_status(row) == "pending confirmation in eu-west-1; confirmed in us-east-1"
    answers["eu-west-1"] = "arn:aws:sns:eu-west-1:123456789012:opsconsole-fleet-alarms:2"
    alarm_topic.step_fleet_topic(None, None)
    row.refresh_from_db()
    assert subscription_status(row) == "confirmed in eu-west-1, us-east-1"

"""The fleet page never waits for CloudWatch: a worker (beat) reads the alarm states of
every account and region and the metrics of the tenants a page showed; the page reads the
cache, with ages, and says "not fetched yet" for the rest."""

from __future__ import annotations

import pytest
from botocore.client import BaseClient
from botocore.stub import Stubber
from django.conf import settings as django_settings
from django.urls import reverse

from opsconsole.aws import clients, cloudwatch
from opsconsole.aws.clients import _session, aws_account, client
from tenants import naming
from tenants.health import cache as health_cache
from tenants.health import fleet_store
from tenants.health.fleet_refresh import fleet_refresh
from tenants.models import Tenant
from tenants.tasks import health_fleet_refresh
from tests.awsaccounts.conftest import register

from .test_health_fleet import bulk_tenants
from .test_health_pages import (  # noqa: F401 - the autouse cache fixture comes along
    REGION,
    active_tenant,
    health_cache_prefix,
    put_lambda_minutes,
)


@pytest.fixture
def viewer(client_for, viewer_user):
    return client_for(viewer_user)


@pytest.fixture
def cw_calls(aws):
    """(operation, metrics requested) of every CloudWatch call, counted at botocore."""
    calls: list[tuple[str, int]] = []

    def record(params, model, **kwargs):
        calls.append((model.name, len(params.get("MetricDataQueries", []))))

    _session().events.register("provide-client-params.monitoring", record)
    return calls


def _alarm(slug: str, *, region: str = REGION, state: str = "ALARM") -> None:
    name = naming.alarm_name(slug, "errors")
    cloudwatch.put_metric_alarm(
        spec={
            "AlarmName": name,
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": 5,
            "Threshold": 5.0,
            "ComparisonOperator": "GreaterThanThreshold",
            "AlarmDescription": f"opsconsole tenant {slug}",
        },
        tags={},
        region=region,
    )
    cloudwatch.set_alarm_state(name=name, state=state, reason="test", region=region)


def test_the_page_renders_cached_numbers_when_aws_is_unreachable(aws, viewer, monkeypatch):
    active_tenant("t9fr-busy")
    put_lambda_minutes("t9fr-busy", invocations=100, errors=20)
    active_tenant("t9fr-ring")
    _alarm("t9fr-ring")
    url = reverse("tenants:list")
    viewer.get(url)  # marks the rows shown
    fleet_refresh()

    def no_aws(*args, **kwargs):
        raise AssertionError("the fleet page called AWS")

    # Both doors: no client may be built, and no call may go out on a cached one.
    monkeypatch.setattr(clients, "_client", no_aws)
    no_aws.cache_clear = lambda: None  # reset_clients() at teardown
    monkeypatch.setattr(BaseClient, "_make_api_call", no_aws)
    later = health_cache.clock() + 40
    monkeypatch.setattr(health_cache, "clock", lambda: later)
    page = viewer.get(url)
    body = page.content.decode()
    assert page.status_code == 200
    assert "20.0%" in body and "updated 40 s ago" in body
    assert "in ALARM: opsconsole-t9fr-ring-errors" in body
    assert "alarms read 40 s ago" in body


def test_before_the_first_refresh_the_page_says_not_fetched_yet(aws, viewer, cw_calls):
    active_tenant("t9fr-new")
    body = viewer.get(reverse("tenants:list")).content.decode()
    assert cw_calls == []
    assert "not fetched yet" in body
    assert "Alarm states of us-east-1 not fetched yet: a worker reads them every 1 min." in body
    # Nobody may call it healthy before anything was read; the table asks again soon.
    assert "metrics unavailable (alarm states not fetched yet)" in body
    assert 'hx-trigger="every 15s"' in body


def test_metrics_only_for_the_rows_someone_looked_at(aws, viewer, cw_calls):
    bulk_tenants(1000)
    url = reverse("tenants:list")
    viewer.get(url)  # page 1: t9f00000..t9f00099
    report = fleet_refresh()
    assert report.tenants_watched == 100 and report.metrics_requested == 300
    # 200 standard queries in one call, 100 percentiles in another; alarms in one call.
    assert sorted(cw_calls) == [
        ("DescribeAlarms", 0),
        ("GetMetricData", 100),
        ("GetMetricData", 200),
    ]

    page_1 = viewer.get(url).content.decode()
    page_5 = viewer.get(url + "?page=5").content.decode()
    assert "not fetched yet" not in page_1.split("<tbody>")[1]
    assert page_5.split("<tbody>")[1].count("not fetched yet") == 100

    del cw_calls[:]
    report = fleet_refresh()  # page 5 was looked at too now
    assert report.tenants_watched == 200 and report.metrics_requested == 600
    assert "not fetched yet" not in viewer.get(url + "?page=5").content.decode().split("<tbody>")[1]


def test_a_page_nobody_looks_at_stops_costing_metrics(aws, viewer, cw_calls, monkeypatch):
    bulk_tenants(5)
    viewer.get(reverse("tenants:list"))
    gone = health_cache.clock() + fleet_store.watch_seconds() + 1
    monkeypatch.setattr(health_cache, "clock", lambda: gone)
    report = fleet_refresh()
    assert report.tenants_watched == 0 and report.metric_calls == 0
    assert [op for op, _ in cw_calls] == ["DescribeAlarms"]  # the status still comes


def test_alarms_per_account_and_region_in_each_accounts_credentials(aws, viewer):
    second = register("cell-2", "222222222222", regions=("us-east-1", "eu-west-1"))
    active_tenant("t9fr-own")
    active_tenant("t9fr-cell")
    active_tenant("t9fr-eu")
    Tenant.objects.filter(slug__in=["t9fr-cell", "t9fr-eu"]).update(aws_account=second)
    Tenant.objects.filter(slug="t9fr-eu").update(region="eu-west-1")
    with aws_account(second):
        _alarm("t9fr-cell")
        _alarm("t9fr-eu", region="eu-west-1")
    # The same alarm in the console's own account says nothing about t9fr-cell there.
    _alarm("t9fr-own", state="OK")
    report = fleet_refresh()
    assert report.groups == 3 and report.alarms_in_alarm == 2
    body = viewer.get(reverse("tenants:list") + "?sort=health").content.decode()
    assert "in ALARM: opsconsole-t9fr-cell-errors" in body
    assert "in ALARM: opsconsole-t9fr-eu-errors" in body
    assert "in ALARM: opsconsole-t9fr-own" not in body


def test_a_failed_refresh_keeps_the_numbers_with_their_age(aws, viewer, monkeypatch):
    active_tenant("t9fr-thr")
    put_lambda_minutes("t9fr-thr", invocations=100, errors=20)
    url = reverse("tenants:list")
    viewer.get(url)
    fleet_refresh()
    later = health_cache.clock() + 120
    monkeypatch.setattr(health_cache, "clock", lambda: later)
    viewer.get(url)
    with Stubber(client("cloudwatch", REGION)) as stubber:
        stubber.add_response("describe_alarms", {"MetricAlarms": []})
        stubber.add_client_error(
            "get_metric_data",
            service_error_code="ThrottlingException",
            service_message="Rate exceeded",
            http_status_code=400,
        )
        report = fleet_refresh()
    assert report.failures == 1
    body = viewer.get(url).content.decode()
    assert "20.0%" in body and "updated 2 min ago" in body
    assert (
        "Metrics of us-east-1 are from up to 2 min ago: AWS is throttling GetMetricData"
        " (ThrottlingException). The worker tries again in about 1 min." in body
    )


def test_one_refresh_at_a_time(db, cw_calls):
    bulk_tenants(3)
    from django.core.cache import cache

    cache.add("health:fleet:refresh:lock", 1, timeout=60)
    assert fleet_refresh().groups == 0 and cw_calls == []
    cache.delete("health:fleet:refresh:lock")
    assert fleet_refresh().groups == 1


def test_beat_runs_the_refresh_every_interval(aws, db):
    entry = django_settings.CELERY_BEAT_SCHEDULE["health-fleet-refresh"]
    assert entry["task"] == health_fleet_refresh.name == "tenants.tasks.health_fleet_refresh"
    assert entry["schedule"] == django_settings.HEALTH_FLEET_REFRESH_SECONDS == 60
    active_tenant("t9fr-beat")
    assert health_fleet_refresh.apply().get() == 0  # nobody looked: no GetMetricData

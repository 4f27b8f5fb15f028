"""The fleet page: health, error rate and p95 from what the refresh worker read (batched
GetMetricData calls for the rows shown, alarm states for all); flat SQL however many
tenants; faults; sorting and filtering. tests/tenants/test_fleet_refresh.py has the
worker itself."""

from __future__ import annotations

import math
import uuid

import pytest
from botocore.stub import Stubber
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from opsconsole.aws import cloudwatch
from opsconsole.aws.clients import _session, client
from tenants import naming
from tenants.health import cache as health_cache
from tenants.health.fleet_refresh import fleet_refresh
from tenants.models import Isolation, ResourceStatus, Tenant, TenantResource, TenantStatus

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
def metric_batches(aws):
    """The number of queries in each GetMetricData call made from here on."""
    sizes: list[int] = []

    def record(params, **kwargs):
        sizes.append(len(params["MetricDataQueries"]))

    _session().events.register("before-parameter-build.cloudwatch.GetMetricData", record)
    return sizes


def bulk_tenants(n: int, *, start: int = 0) -> None:
    Tenant.objects.bulk_create(
        Tenant(
            name=f"Fleet {i}",
            slug=f"t9f{i:05d}",
            region=REGION,
            status=TenantStatus.ACTIVE,
            isolation=Isolation.SHARED,
            current_release="1.4.0",
        )
        for i in range(start, start + n)
    )


def fresh_cache(settings) -> None:
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "KEY_PREFIX": f"test-health-{uuid.uuid4().hex[:10]}",
        }
    }


def refreshed(client, url: str) -> str:
    """The page after the worker read the numbers of the rows it showed."""
    client.get(url)
    fleet_refresh()
    return client.get(url).content.decode()


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_fleet_page_costs_the_same_sql_for_10_and_1000_tenants(
    aws, viewer, settings, django_assert_num_queries
):
    url = reverse("tenants:list")
    bulk_tenants(10)
    cold_10 = queries_for(viewer, url)
    warm_10 = queries_for(viewer, url)
    assert warm_10 <= 15

    bulk_tenants(990, start=10)
    fresh_cache(settings)
    with django_assert_num_queries(cold_10):
        page = viewer.get(url)
    assert "Page 1 of 10" in page.content.decode()
    with django_assert_num_queries(warm_10):
        viewer.get(url + "?sort=errors&page=3")


def test_fleet_metrics_in_batches_of_500_then_cached(metric_batches, viewer, settings):
    bulk_tenants(1000)
    settings.HEALTH_FLEET_PAGE_SIZE = 1000  # all of them on screen, so all watched
    url = reverse("tenants:list")
    assert viewer.get(url).status_code == 200
    assert metric_batches == []  # the page never asks CloudWatch
    fleet_refresh()
    standard, percentile = 2 * 1000, 1 * 1000
    assert len(metric_batches) == math.ceil(standard / 500) + math.ceil(percentile / 500)
    assert max(metric_batches) == 500 and sum(metric_batches) == standard + percentile

    del metric_batches[:]
    assert viewer.get(url).status_code == 200
    assert viewer.get(url + "?health=down").status_code == 200
    assert metric_batches == []


def test_error_rate_p95_health_sort_and_filter(aws, viewer):
    active_tenant("t9quiet")
    active_tenant("t9calm")
    active_tenant("t9noisy")
    put_lambda_minutes("t9calm", invocations=100, errors=1)
    put_lambda_minutes("t9noisy", invocations=100, errors=30)
    url = reverse("tenants:list")

    page = refreshed(viewer, url + "?sort=errors")
    assert "30.0%" in page and "1.0%" in page
    assert page.index("t9noisy") < page.index("t9calm") < page.index("t9quiet")
    assert "30.0% of invocations failed in the last hour" in page

    degraded = viewer.get(url + "?health=degraded").content.decode()
    assert "t9noisy" in degraded and "t9calm" not in degraded
    assert 'value="degraded" selected' in degraded

    by_health = viewer.get(url + "?sort=health").content.decode()
    assert by_health.index("t9noisy") < by_health.index("t9calm")


def test_p95_column_from_the_percentile_batch(aws, viewer):
    active_tenant("t9pfleet")
    cw = client("cloudwatch", REGION)
    viewer.get(reverse("tenants:list"))
    with Stubber(cw) as stubber:
        stubber.add_response("describe_alarms", {"MetricAlarms": []})
        stubber.add_response(
            "get_metric_data",
            {
                "MetricDataResults": [
                    {"Id": "t0_inv", "Values": [200.0], "StatusCode": "Complete"},
                    {"Id": "t0_err", "Values": [2.0], "StatusCode": "Complete"},
                ]
            },
        )
        stubber.add_response(
            "get_metric_data",
            {"MetricDataResults": [{"Id": "t0_p95", "Values": [312.4], "StatusCode": "Complete"}]},
        )
        fleet_refresh()
        stubber.assert_no_pending_responses()
    page = viewer.get(reverse("tenants:list")).content.decode()
    assert "312 ms" in page and "1.0%" in page


def test_fleet_alarm_and_missing_resource_make_the_status(aws, viewer):
    active_tenant("t9ring")
    gone = active_tenant("t9gone")
    TenantResource.objects.filter(tenant=gone, kind="alias").update(status=ResourceStatus.MISSING)
    cloudwatch.put_metric_alarm(
        spec={
            "AlarmName": naming.alarm_name("t9ring", "errors"),
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": 5,
            "Threshold": 5.0,
            "ComparisonOperator": "GreaterThanThreshold",
            "AlarmDescription": "opsconsole tenant t9ring",
        },
        tags={},
        region=REGION,
    )
    cloudwatch.set_alarm_state(
        name=naming.alarm_name("t9ring", "errors"), state="ALARM", reason="test", region=REGION
    )
    fleet_refresh()
    page = viewer.get(reverse("tenants:list") + "?sort=health").content.decode()
    assert "in ALARM: opsconsole-t9ring-errors" in page
    assert "missing alias opsconsole-t9gone:live" in page
    assert page.index("t9gone") < page.index("t9ring")  # down before degraded


def test_fleet_throttled_shows_cached_numbers_with_their_age(aws, viewer, monkeypatch):
    active_tenant("t9fthr")
    put_lambda_minutes("t9fthr", invocations=100, errors=20)
    url = reverse("tenants:list")
    assert "20.0%" in refreshed(viewer, url)

    later = health_cache.clock() + 120
    monkeypatch.setattr(health_cache, "clock", lambda: later)
    viewer.get(url)
    cw = client("cloudwatch", REGION)
    with Stubber(cw) as stubber:
        stubber.add_response("describe_alarms", {"MetricAlarms": []})
        stubber.add_client_error(
            "get_metric_data",
            service_error_code="ThrottlingException",
            service_message="Rate exceeded",
            http_status_code=400,
        )
        fleet_refresh()
    page = viewer.get(url)
    body = page.content.decode()
    assert page.status_code == 200
    assert "20.0%" in body
    assert (
        "Metrics of us-east-1 are from up to 2 min ago: AWS is throttling GetMetricData"
        " (ThrottlingException). The worker tries again in about 1 min." in body
    )


def test_fleet_with_no_numbers_at_all_still_lists_every_tenant(aws, viewer):
    active_tenant("t9dark")
    cw = client("cloudwatch", REGION)
    viewer.get(reverse("tenants:list"))
    with Stubber(cw) as stubber:
        for operation in ("describe_alarms", "get_metric_data", "get_metric_data"):
            stubber.add_client_error(
                operation, service_error_code="AccessDenied", http_status_code=403
            )
        fleet_refresh()
    page = viewer.get(reverse("tenants:list"))
    body = page.content.decode()
    assert page.status_code == 200 and "t9dark" in body
    assert "Alarm states of us-east-1 are unavailable: " in body
    assert "Metrics of us-east-1 are unavailable right now: " in body
    assert "metrics unavailable (alarm states unavailable: " in body


def test_fleet_keeps_its_empty_state_and_filters(aws, viewer):
    page = viewer.get(reverse("tenants:list")).content.decode()
    assert "No tenants yet" in page
    active_tenant("t9only")
    page = viewer.get(reverse("tenants:list") + "?q=zzz").content.decode()
    assert "No tenant matches." in page


def test_outsider_gets_404_on_the_fleet(aws, client_for, outsider_user):
    assert client_for(outsider_user).get(reverse("tenants:list")).status_code == 404

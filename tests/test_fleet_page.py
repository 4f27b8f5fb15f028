"""The fleet page for a newcomer (issue 16): a CloudWatch failure as a sentence with its
retry, where the sandbox's numbers come from, a summary of the fleet, the rollout in
progress."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deployments.models import Release, Rollout, RolloutStatus
from opsconsole.aws.clients import client
from opsconsole.aws.errors import AwsError
from tenants.health.cache import describe_error
from tenants.health.fleet_refresh import fleet_refresh
from tenants.models import ResourceStatus, Tenant, TenantResource, TenantStatus

from .tenants.test_health_pages import (  # noqa: F401 - the autouse cache fixture comes along
    REGION,
    active_tenant,
    health_cache_prefix,
)

HTML_500 = "<html><head><title>500 Internal Server Error</title></head><body>oops</body></html>"


@pytest.fixture
def viewer(client_for, viewer_user):
    return client_for(viewer_user)


def test_an_html_error_page_reads_as_who_answered_what():
    exc = AwsError(HTML_500, code="500", operation="GetMetricData", permanent=False)
    assert describe_error(exc) == "CloudWatch answered HTTP 500 to GetMetricData"


def test_a_cloudwatch_failure_is_a_sentence_and_the_table_retries(aws, viewer):
    active_tenant("he-fleet-dark")
    viewer.get(reverse("tenants:list"))
    with Stubber(client("cloudwatch", REGION)) as stubber:
        stubber.add_response("describe_alarms", {"MetricAlarms": []})
        for _ in range(2):  # the standard numbers, then the percentiles
            stubber.add_client_error(
                "get_metric_data",
                service_error_code="500",
                service_message=HTML_500,
                http_status_code=500,
            )
        fleet_refresh()
    page = viewer.get(reverse("tenants:list")).content.decode()
    assert (
        "Metrics of us-east-1 are unavailable right now: CloudWatch answered HTTP 500 to "
        "GetMetricData. The worker tries again in about 1 min." in page
    )
    assert "p95 duration of us-east-1 is unavailable right now" in page
    assert "about 10 min." in page  # percentiles wait longer (HEALTH_PERCENTILE_RETRY_SECONDS)
    assert "<html" not in page.split("<body", 1)[1]  # no markup of AWS's error page
    # The table asks again by itself (no page reload); its rows have no numbers yet.
    assert 'hx-trigger="every 15s" hx-select="#fleet-health"' in page


def test_the_table_polls_as_often_as_the_worker_refreshes(aws, viewer, settings):
    active_tenant("he-fleet-ok")
    settings.HEALTH_FLEET_REFRESH_SECONDS = 45
    viewer.get(reverse("tenants:list"))
    fleet_refresh()
    page = viewer.get(reverse("tenants:list")).content.decode()
    assert 'hx-trigger="every 45s" hx-select="#fleet-health"' in page
    assert "read every 45 s for the tenants on screen" in page


@pytest.mark.parametrize("refreshed", [False, True], ids=["cold", "refreshed"])
def test_the_fleet_page_costs_the_same_sql_for_5_and_50_tenants(aws, viewer, refreshed):
    """Flat: the count of 5 tenants holds for 50 (one AWS account, one region each time:
    a fleet over several accounts adds one query for their names in the notes)."""
    url = reverse("tenants:list") + "?sort=errors"

    def queries() -> int:
        viewer.get(url)
        if refreshed:
            fleet_refresh()
        with CaptureQueriesContext(connection) as ctx:
            assert viewer.get(url).status_code == 200
        return len(ctx.captured_queries)

    for i in range(5):
        active_tenant(f"he-flat-{i:02d}")
    five = queries()
    for i in range(5, 50):
        active_tenant(f"he-flat-{i:02d}")
    TenantResource.objects.filter(tenant__slug="he-flat-07", kind="alias").update(
        status=ResourceStatus.MISSING
    )
    assert queries() == five


def test_the_sandbox_says_where_its_numbers_come_from(aws, viewer, settings):
    active_tenant("he-fleet-sb")
    settings.SANDBOX = True
    page = viewer.get(reverse("tenants:list")).content.decode()
    assert "Sandbox: nothing here is simulated." in page
    assert "opsconsole-demo-traffic" in page
    settings.SANDBOX = False
    assert "nothing here is simulated" not in viewer.get(reverse("tenants:list")).content.decode()


def test_the_fleet_summary_counts_by_status_and_health(aws, viewer):
    for slug in ("he-fleet-a", "he-fleet-b"):
        active_tenant(slug)
    Tenant.objects.filter(pk=active_tenant("he-fleet-c").pk).update(status=TenantStatus.SUSPENDED)
    Tenant.objects.filter(pk=active_tenant("he-fleet-d").pk).update(status=TenantStatus.OFFBOARDED)
    page = viewer.get(reverse("tenants:list")).content.decode()
    summary = page.split('id="fleet-summary"', 1)[1].split("</section>", 1)[0]
    assert "<strong>3</strong> tenant(s):" in summary
    assert '<a href="?status=active">2 active</a>' in summary
    assert '<a href="?status=suspended">1 suspended</a>' in summary
    assert "(1 offboarded)" in summary
    assert "health=healthy" in summary and "healthy</a>" in summary


def test_a_rollout_in_progress_is_linked_from_the_fleet(aws, viewer):
    active_tenant("he-fleet-r")
    release = Release.objects.create(version="2026.12.0", artifact_type="zip")
    running = Rollout.objects.create(release=release, wave_sizes=[1, 1, 3], current_wave=1)
    done = Rollout.objects.create(release=release, wave_sizes=[1], status=RolloutStatus.SUCCEEDED)
    page = viewer.get(reverse("tenants:list")).content.decode()
    assert (
        f'<a href="/rollouts/{running.pk}/">Rollout #{running.pk}</a> puts '
        '<a href="/releases/2026.12.0/">2026.12.0</a> on 5 tenant(s): wave 2 of 3.'
    ) in page
    assert f'href="/rollouts/{done.pk}/"' not in page

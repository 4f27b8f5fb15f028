"""The fleet page in SQL (issue 14): the worker's FleetHealth rows carry each tenant's
verdict and numbers, the database counts, sorts, filters and pages them, the tenant's
lifecycle status joins in live; the API's list reads the same rows and marks its own."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tenants.health import fleet_store
from tenants.health.fleet import fleet_table
from tenants.health.fleet_refresh import fleet_refresh
from tenants.models import FleetHealth, ResourceStatus, Tenant, TenantResource, TenantStatus
from tests.api.conftest import auth

from .test_health_pages import (  # noqa: F401 - the autouse cache fixture comes along
    active_tenant,
    health_cache_prefix,
    put_lambda_minutes,
)

TENANTS_API = "/api/v1/tenants/"


@pytest.fixture
def viewer(client_for, viewer_user):
    return client_for(viewer_user)


def rows_of(page: str) -> list[tuple[str, str]]:
    """(slug, health) of each table row, in order."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<strong>([\w-]+)</strong>.*?pill health-(\w+)", body, re.S)


def mixed_fleet() -> None:
    """Healthy, erroring (degraded and down), a missing alias, a suspended one, a new one
    the worker has not judged yet."""
    for slug, inv, err in (("sq-calm", 100, 1), ("sq-noisy", 100, 10), ("sq-bad", 100, 80)):
        active_tenant(slug)
        put_lambda_minutes(slug, invocations=inv, errors=err)
    gone = active_tenant("sq-gone")
    TenantResource.objects.filter(tenant=gone, kind="alias").update(status=ResourceStatus.MISSING)
    Tenant.objects.filter(pk=active_tenant("sq-off").pk).update(status=TenantStatus.SUSPENDED)
    active_tenant("sq-quiet")


def test_the_sql_level_is_the_one_assess_finds(aws, viewer):
    mixed_fleet()
    url = reverse("tenants:list")
    viewer.get(url)
    fleet_refresh()
    active_tenant("sq-late")  # after the round: no row yet
    page = viewer.get(url).content.decode()
    shown = dict(rows_of(page))
    assert shown == {
        "sq-bad": "down",
        "sq-calm": "healthy",
        "sq-gone": "down",
        "sq-late": "degraded",
        "sq-noisy": "degraded",
        "sq-off": "down",
        "sq-quiet": "healthy",
    }
    assert "alarm states not fetched yet" in page.split("sq-late", 2)[2][:2000]


def test_sorts_filters_and_counts_come_from_the_database(aws, viewer):
    mixed_fleet()
    url = reverse("tenants:list")
    viewer.get(url)
    fleet_refresh()
    by_errors = [slug for slug, _ in rows_of(viewer.get(url + "?sort=errors").content.decode())]
    # Worst rate first; no numbers (not watched, no traffic) last, by slug.
    assert by_errors[:3] == ["sq-bad", "sq-noisy", "sq-calm"]
    assert by_errors[3:] == ["sq-gone", "sq-off", "sq-quiet"]
    by_health = rows_of(viewer.get(url + "?sort=health").content.decode())
    assert [h for _, h in by_health] == ["down"] * 3 + ["degraded"] + ["healthy"] * 2
    down = viewer.get(url + "?health=down").content.decode()
    assert sorted(slug for slug, _ in rows_of(down)) == ["sq-bad", "sq-gone", "sq-off"]
    assert '<option value="down" selected>down (3)</option>' in down
    assert '<option value="healthy" >healthy (2)</option>' in down
    # Counted over the search too ("Health of those listed").
    searched = viewer.get(url + "?q=sq-b").content.decode()
    assert "down (1)" in searched and "healthy (0)" in searched


def test_a_suspended_tenant_is_down_at_once_without_a_refresh(aws, viewer):
    tenant = active_tenant("sq-live")
    url = reverse("tenants:list")
    viewer.get(url)
    fleet_refresh()
    assert rows_of(viewer.get(url).content.decode()) == [("sq-live", "healthy")]
    Tenant.objects.filter(pk=tenant.pk).update(status=TenantStatus.SUSPENDED)
    page = viewer.get(url + "?health=down").content.decode()
    assert rows_of(page) == [("sq-live", "down")]
    assert "suspended: its function takes no traffic" in page


def test_pages_are_cut_by_the_database_in_the_sorts_order(aws, viewer, settings):
    for i in range(5):
        active_tenant(f"sq-p{i}")
        put_lambda_minutes(f"sq-p{i}", invocations=100, errors=i)
    settings.HEALTH_FLEET_PAGE_SIZE = 5
    url = reverse("tenants:list")
    viewer.get(url)  # all five watched
    fleet_refresh()
    settings.HEALTH_FLEET_PAGE_SIZE = 2
    pages = [
        [s for s, _ in rows_of(viewer.get(f"{url}?sort=errors&page={n}").content.decode())]
        for n in (1, 2, 3)
    ]
    assert pages == [["sq-p4", "sq-p3"], ["sq-p2", "sq-p1"], ["sq-p0"]]
    last = viewer.get(f"{url}?sort=errors&page=3").content.decode()
    assert "Page 3 of 3 · 5 tenants" in last


@pytest.mark.parametrize(
    "query", ["", "?sort=health", "?sort=p95&page=2", "?health=healthy&sort=errors", "?q=sq"]
)
def test_every_view_of_the_fleet_costs_the_same_sql_for_5_and_50(aws, viewer, settings, query):
    """Flat in the number of tenants, and one page of rows read: a table of 20,000 is
    never pulled into Python."""
    settings.HEALTH_FLEET_PAGE_SIZE = 4
    url = reverse("tenants:list") + query

    def measure() -> tuple[int, int]:
        viewer.get(url)
        fleet_refresh()
        with CaptureQueriesContext(connection) as ctx:
            assert viewer.get(url).status_code == 200
        return len(ctx.captured_queries), max(len(q["sql"]) for q in ctx.captured_queries)

    for i in range(5):
        active_tenant(f"sq-f{i:02d}")
    five, _ = measure()
    for i in range(5, 50):
        active_tenant(f"sq-f{i:02d}")
    with CaptureQueriesContext(connection) as ctx:
        fleet_table(Tenant.objects.order_by("slug"))[0:4]
    ids_sql, rows_sql = (q["sql"] for q in ctx.captured_queries[-2:])
    # The page's ids (4 of them), then those rows only.
    assert ids_sql.startswith('SELECT "tenants_tenant"."id" AS "id" FROM') and "LIMIT 4" in ids_sql
    assert re.search(r'WHERE "tenants_tenant"."id" IN \(\d+, \d+, \d+, \d+\)$', rows_sql)
    assert measure()[0] == five


def test_a_second_round_writes_only_what_changed(aws, viewer, settings):
    settings.HEALTH_FLEET_PAGE_SIZE = 1
    for slug in ("sq-w1", "sq-w2", "sq-w3"):
        active_tenant(slug)
    viewer.get(reverse("tenants:list"))  # sq-w1 watched
    assert fleet_refresh().rows_written == 3
    # Only the watched row changes (its numbers' read time); the others stay as they are.
    assert fleet_refresh().rows_written == 1
    TenantResource.objects.filter(tenant__slug="sq-w3", kind="api").update(
        status=ResourceStatus.MISSING
    )
    assert fleet_refresh().rows_written == 2
    row = FleetHealth.objects.get(tenant__slug="sq-w3")
    assert row.signals_rank == 2 and row.missing == [["api", "opsconsole-sq-w3"]]


def test_the_api_shows_every_stored_number_and_marks_its_rows(aws, client, viewer_user):
    """The API used to show numbers only for tenants the web page had marked: the worker
    fetched nobody else's. Its rows are watched now, and what the store holds is shown."""
    for slug in ("sq-api1", "sq-api2"):
        active_tenant(slug)
        put_lambda_minutes(slug, invocations=100, errors=20)
    headers = auth(viewer_user)
    listed = client.get(TENANTS_API, **headers).json()  # no browser ever looked
    assert [i["invocations_1h"] for i in listed["items"]] == [None, None]
    assert fleet_store.watched(["sq-api1", "sq-api2"]) == ["sq-api1", "sq-api2"]
    assert fleet_refresh().tenants_watched == 2
    listed = client.get(TENANTS_API + "?limit=1&offset=1", **headers).json()
    assert listed["count"] == 2
    (item,) = listed["items"]
    assert item["slug"] == "sq-api2" and item["invocations_1h"] == 1000.0
    assert item["error_rate_1h"] == pytest.approx(0.2) and item["health"] == "degraded"

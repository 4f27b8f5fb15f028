"""The tenant health page: one GetMetricData call for the standard statistics (and one
for percentiles), the cache, faults (a failing percentile query, CloudWatch throttling,
missing resources), alarm states, error lines, the shared database's numbers, roles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber
from django.conf import settings
from django.urls import reverse

from opsconsole.aws import cloudwatch, logs, secrets
from opsconsole.aws.clients import _session, client
from tenants import naming
from tenants.health import cache as health_cache
from tenants.health.status import DEGRADED, DOWN, HEALTHY, tenant_status
from tenants.models import Isolation, ResourceStatus, Tenant, TenantResource, TenantStatus

from .conftest import make_tenant

REGION = "us-east-1"
API_ID = "a1b2c3d4"


# --- helpers shared by the other test_health* modules ------------------------------------


@pytest.fixture(autouse=True)
def health_cache_prefix(settings):
    """A Redis cache of its own per test (a fresh key prefix; never cache.clear(), which
    would flush the broker's database)."""
    location = settings.BROKER_URL
    if location.startswith("redis"):
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": location,
                "KEY_PREFIX": f"test-health-{uuid.uuid4().hex[:10]}",
            }
        }
    else:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": uuid.uuid4().hex,
            }
        }


@pytest.fixture
def aws_calls(aws):
    """Every AWS API call made from here on, as (service, operation) pairs."""
    calls: list[tuple[str, str]] = []

    def record(model, **kwargs):
        calls.append((model.service_model.service_name, model.name))

    _session().events.register("before-call", record)
    return calls


def metric_calls(calls, operation: str = "GetMetricData") -> int:
    return sum(1 for _, op in calls if op == operation)


def add_stack(tenant: Tenant, *, api: bool = True, alarms: bool = True) -> None:
    """The resource records provisioning leaves behind (no AWS resources needed)."""
    slug = tenant.slug
    function = naming.function_name(slug)
    rows = [
        ("function", function, ""),
        ("alias", f"{function}:{naming.ALIAS}", function),
        ("log_group", naming.log_group_name(slug), ""),
    ]
    if api:
        rows.append(("api", naming.api_name(slug), API_ID))
    if tenant.isolation == Isolation.DEDICATED:
        rows.append(("db_instance", naming.db_instance_id(slug), naming.db_instance_id(slug)))
    elif tenant.isolation == Isolation.SERVERLESS:
        rows.append(("db_cluster", naming.db_cluster_id(slug), naming.db_cluster_id(slug)))
    else:
        rows.append(("database", naming.db_name(slug), settings.BASELINE["shared_db_instance"]))
    if alarms:
        for what in ("errors", "throttles"):
            rows.append(("alarm", naming.alarm_name(slug, what), naming.alarm_name(slug, what)))
    for kind, name, identifier in rows:
        TenantResource.objects.create(
            tenant=tenant, kind=kind, name=name, identifier=identifier, region=tenant.region
        )


def active_tenant(slug: str, **spec) -> Tenant:
    spec.setdefault("isolation", Isolation.DEDICATED)
    tenant = make_tenant(
        slug, status=TenantStatus.ACTIVE, current_release="1.4.0", desired_release="1.4.0", **spec
    )
    add_stack(tenant)
    return tenant


def fn_dims(slug: str) -> list[dict]:
    function = naming.function_name(slug)
    return [
        {"Name": "FunctionName", "Value": function},
        {"Name": "Resource", "Value": f"{function}:{naming.ALIAS}"},
    ]


def put_lambda_minutes(slug: str, *, invocations: int, errors: int, minutes: int = 10) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    data = []
    for i in range(1, minutes + 1):
        at = now - timedelta(minutes=i)
        data += [
            {
                "MetricName": "Invocations",
                "Dimensions": fn_dims(slug),
                "Timestamp": at,
                "Value": invocations,
                "Unit": "Count",
            },
            {
                "MetricName": "Errors",
                "Dimensions": fn_dims(slug),
                "Timestamp": at,
                "Value": errors,
                "Unit": "Count",
            },
            {
                "MetricName": "Duration",
                "Dimensions": fn_dims(slug),
                "Timestamp": at,
                "StatisticValues": {
                    "SampleCount": invocations,
                    "Sum": 87.0 * invocations,
                    "Minimum": 20.0,
                    "Maximum": 400.0,
                },
                "Unit": "Milliseconds",
            },
        ]
    cloudwatch.put_metric_data(namespace="AWS/Lambda", data=data, region=REGION)


def put_alarms(slug: str) -> None:
    """The two alarms add_stack records, in (moto's) CloudWatch."""
    for what in ("errors", "throttles"):
        cloudwatch.put_metric_alarm(
            spec={
                "AlarmName": naming.alarm_name(slug, what),
                "Namespace": "AWS/Lambda",
                "MetricName": what.title(),
                "Statistic": "Sum",
                "Period": 60,
                "EvaluationPeriods": 5,
                "Threshold": 5.0,
                "ComparisonOperator": "GreaterThanThreshold",
                "Dimensions": fn_dims(slug),
                "AlarmDescription": f"opsconsole tenant {slug}",
            },
            tags={},
            region=REGION,
        )


def stub_standard_answer(stubber: Stubber, values: dict[str, float]) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    stubber.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                {
                    "Id": qid,
                    "Label": qid,
                    "Timestamps": [now - timedelta(minutes=2)],
                    "Values": [value],
                    "StatusCode": "Complete",
                }
                for qid, value in values.items()
            ]
        },
    )


def stub_alarms(stubber: Stubber) -> None:
    stubber.add_response("describe_alarms", {"MetricAlarms": []})


@pytest.fixture
def viewer(client_for, viewer_user):
    return client_for(viewer_user)


def health_url(slug: str, **params) -> str:
    url = reverse("tenants:health", args=[slug])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


# --- roles -----------------------------------------------------------------------------


def test_roles_viewer_sees_the_page_outsider_gets_404(
    aws, client_for, viewer_user, outsider_user, client
):
    active_tenant("t9roles")
    url = health_url("t9roles")
    assert client.get(url).status_code == 302  # not logged in: to the login page
    assert client_for(outsider_user).get(url).status_code == 404
    assert client_for(viewer_user).get(url).status_code == 200


def test_unknown_tenant_is_404(aws, viewer):
    assert viewer.get(health_url("t9nobody")).status_code == 404


def test_tenant_detail_links_the_health_page(aws, viewer):
    active_tenant("t9link")
    page = viewer.get(reverse("tenants:detail", args=["t9link"])).content.decode()
    assert health_url("t9link") in page


# --- one call per page, and the cache ----------------------------------------------------


def test_one_standard_and_one_percentile_call_per_page_then_the_cache(aws_calls, viewer):
    active_tenant("t9calls")
    put_lambda_minutes("t9calls", invocations=100, errors=1)
    del aws_calls[:]

    first = viewer.get(health_url("t9calls"))
    assert first.status_code == 200
    # Standard statistics in one call; percentiles in one of their own (moto fails it).
    assert metric_calls(aws_calls) == 2
    assert metric_calls(aws_calls, "DescribeAlarms") == 1

    del aws_calls[:]
    second = viewer.get(health_url("t9calls"))
    assert second.status_code == 200
    assert aws_calls == []  # everything from the cache within the minute
    assert "Invocations" in second.content.decode()


def test_standard_queries_carry_function_alias_api_and_instance_dimensions(
    aws, viewer, monkeypatch
):
    tenant = active_tenant("t9dim2")
    seen: list[list[dict]] = []
    real = cloudwatch.get_metric_data

    def spy(**kwargs):
        seen.append(kwargs["queries"])
        return real(**kwargs)

    monkeypatch.setattr(cloudwatch, "get_metric_data", spy)
    assert viewer.get(health_url(tenant.slug)).status_code == 200
    standard, percentile = seen
    dims = {
        q["Id"]: {d["Name"]: d["Value"] for d in q["MetricStat"]["Metric"]["Dimensions"]}
        for q in standard + percentile
    }
    function = naming.function_name(tenant.slug)
    assert dims["fn_errors"] == {"FunctionName": function, "Resource": f"{function}:live"}
    assert dims["api_5xx"] == {"ApiId": API_ID, "Stage": "$default"}
    assert dims["db_cpu"] == {"DBInstanceIdentifier": naming.db_instance_id(tenant.slug)}
    assert all(q["MetricStat"]["Stat"] != "p95" for q in standard)
    assert {q["Id"] for q in percentile} == {"fn_duration_p95", "api_latency_p95"}
    assert len(standard) <= 500


# --- faults ------------------------------------------------------------------------------


def test_a_failing_percentile_query_leaves_the_rest_of_the_page_moto(aws, viewer):
    active_tenant("t9pct")
    put_lambda_minutes("t9pct", invocations=50, errors=0)
    page = viewer.get(health_url("t9pct"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "p95 unavailable" in body
    assert "87 ms" in body  # the average duration still drawn


def test_a_failing_percentile_query_leaves_the_rest_of_the_page_stubbed(aws, viewer):
    active_tenant("t9pcts")
    cw = client("cloudwatch", REGION)
    with Stubber(cw) as stubber:
        stub_standard_answer(stubber, {"fn_invocations": 4321, "fn_duration_avg": 123.0})
        stubber.add_client_error(
            "get_metric_data",
            service_error_code="InvalidParameterCombination",
            service_message="percentiles are not supported here",
            http_status_code=400,
        )
        stub_alarms(stubber)
        page = viewer.get(health_url("t9pcts"))
        stubber.assert_no_pending_responses()
    assert page.status_code == 200
    body = page.content.decode()
    assert "4.3k" in body and "123 ms" in body
    assert "p95 unavailable" in body and "percentiles are not supported here" in body


def test_cloudwatch_throttled_shows_the_cached_numbers_with_their_age(aws, viewer, monkeypatch):
    active_tenant("t9thr")
    cw = client("cloudwatch", REGION)
    with Stubber(cw) as stubber:
        stub_standard_answer(stubber, {"fn_invocations": 777})
        stubber.add_response("get_metric_data", {"MetricDataResults": []})
        stub_alarms(stubber)
        assert viewer.get(health_url("t9thr")).status_code == 200

    later = health_cache.clock() + 180
    monkeypatch.setattr(health_cache, "clock", lambda: later)
    with Stubber(cw) as stubber:
        for _ in range(3):
            stubber.add_client_error(
                "get_metric_data",
                service_error_code="ThrottlingException",
                service_message="Rate exceeded",
                http_status_code=400,
            )
        stubber.add_client_error(
            "describe_alarms",
            service_error_code="Throttling",
            service_message="Rate exceeded",
            http_status_code=400,
        )
        page = viewer.get(health_url("t9thr"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "777" in body  # the cached numbers, still drawn
    assert "showing the last good answer, 3 min old" in body
    assert "throttling" in body


def test_cloudwatch_down_with_nothing_cached_is_a_note_not_a_500(aws, viewer):
    active_tenant("t9down")
    cw = client("cloudwatch", REGION)
    with Stubber(cw) as stubber:
        stubber.add_client_error(
            "get_metric_data", service_error_code="InternalFailure", http_status_code=500
        )
        stubber.add_client_error(
            "get_metric_data", service_error_code="InternalFailure", http_status_code=500
        )
        stubber.add_client_error(
            "describe_alarms", service_error_code="InternalFailure", http_status_code=500
        )
        page = viewer.get(health_url("t9down"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "CloudWatch metrics: unavailable" in body
    assert "degraded" in body.lower() and "metrics unavailable" in body


def test_missing_resources_are_listed_and_the_tenant_is_down(aws, viewer):
    tenant = active_tenant("t9miss")
    TenantResource.objects.filter(tenant=tenant, kind="function").update(
        status=ResourceStatus.MISSING
    )
    TenantResource.objects.filter(tenant=tenant, kind="api").delete()
    page = viewer.get(health_url("t9miss")).content.decode()
    assert "Missing resources" in page
    assert f"function <code>{naming.function_name('t9miss')}</code>" in page
    assert f"api <code>{naming.api_name('t9miss')}</code>" in page
    assert "health-down" in page
    status, reason = tenant_status(tenant)
    assert status == DOWN and "missing function" in reason


# --- alarms, error lines, history -----------------------------------------------------------


def test_alarm_states_with_console_links(aws, viewer):
    tenant = active_tenant("t9alarm")
    put_alarms("t9alarm")
    cloudwatch.set_alarm_state(
        name=naming.alarm_name("t9alarm", "errors"),
        state="ALARM",
        reason="Threshold crossed: 9 errors",
        region=REGION,
    )
    page = viewer.get(health_url("t9alarm")).content.decode()
    assert "Threshold crossed: 9 errors" in page
    assert "#alarmsV2:alarm/opsconsole-t9alarm-errors" in page
    assert "in ALARM: opsconsole-t9alarm-errors" in page
    assert tenant_status(tenant)[0] == DEGRADED


def test_last_20_error_lines_newest_first(aws, viewer):
    active_tenant("t9logs")
    group = naming.log_group_name("t9logs")
    logs.create_log_group(name=group, tags={})
    logs.create_log_stream(group=group, stream="s1")
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    events = [
        {"timestamp": now_ms - (30 - i) * 1000, "message": f"[ERROR] boom number {i:02d}"}
        for i in range(25)
    ]
    events.append({"timestamp": now_ms - 500, "message": "INFO all fine"})
    logs.put_log_events(group=group, stream="s1", events=events)
    page = viewer.get(health_url("t9logs")).content.decode()
    shown = [i for i in range(25) if f"boom number {i:02d}" in page]
    assert shown == list(range(5, 25))  # the newest 20
    assert page.index("boom number 24") < page.index("boom number 05")
    assert "all fine" not in page


def test_deployment_history_and_release(aws, viewer):
    from opsconsole.jobs.models import Job, JobStatus

    tenant = active_tenant("t9hist")
    Job.objects.create(
        kind="tenant_provision",
        subject_type="tenant",
        subject_id="t9hist",
        status=JobStatus.SUCCEEDED,
        finished_at=datetime.now(UTC),
    )
    Job.objects.create(
        kind="tenant_drift_check",
        subject_type="tenant",
        subject_id="t9hist",
        status=JobStatus.SUCCEEDED,
    )
    page = viewer.get(health_url(tenant.slug)).content.decode()
    assert "1.4.0" in page
    assert "deploy-marker" in page  # the provision job is marked on the charts
    assert page.count("pill-succeeded") == 1  # the drift check is no deployment


def test_htmx_range_switch_returns_the_panel_only(aws, viewer):
    active_tenant("t9htmx")
    page = viewer.get(health_url("t9htmx", range="1d"), HTTP_HX_REQUEST="true")
    body = page.content.decode()
    assert page.status_code == 200
    assert body.lstrip().startswith('<div id="health-panel"')
    assert "5 min periods" in body and "<html" not in body


def test_unknown_range_falls_back_to_the_hour(aws, viewer):
    active_tenant("t9range")
    body = viewer.get(health_url("t9range", range="1y")).content.decode()
    assert "1 min periods" in body


# --- the shared database's own numbers --------------------------------------------------------


@pytest.fixture
def shared_master_secret(aws):
    secrets.create_secret_json(
        name=settings.BASELINE["shared_db_master_secret"],
        value={
            "engine": "postgres",
            # The shared instance of this account is the local server.
            "host": settings.SANDBOX_PG_HOST,
            "port": settings.SANDBOX_PG_PORT,
            "username": settings.SANDBOX_PG_USER,
            "password": _local_password(),
            "dbname": "postgres",
        },
        description="test",
        tags={},
        region=REGION,
    )


def _local_password() -> str:
    return settings.DATABASES["default"].get("PASSWORD") or ""


def test_shared_tenant_shows_its_own_database_numbers(shared_master_secret, viewer, tenant_dbs):
    import psycopg

    from .conftest import _admin_conn

    with _admin_conn() as conn:
        conn.execute('CREATE DATABASE "tenant_t9shared"')
    active_tenant("t9shared", isolation=Isolation.SHARED)
    # One open connection to the tenant's database, so it has a number to show.
    with psycopg.connect(
        host=settings.SANDBOX_PG_HOST,
        port=settings.SANDBOX_PG_PORT,
        user=settings.SANDBOX_PG_USER,
        dbname="tenant_t9shared",
        autocommit=True,
    ) as conn:
        conn.execute("SELECT 1")
        assert "reading…" in viewer.get(health_url("t9shared")).content.decode()
        # What the worker asked by that page does (tests/tenants/test_readings_in_workers.py).
        from tenants.health.shared_db import shared_db_read

        shared_db_read(region=REGION, instance=settings.BASELINE["shared_db_instance"])
        body = viewer.get(health_url("t9shared")).content.decode()
    assert "pg_stat_database on the shared instance" in body
    assert "<code>tenant_t9shared</code> on <code>opsconsole-shared-pg</code>" in body
    assert "<dt>Connections</dt><dd>1 of " in body
    # The shared instance's CloudWatch series are asked with its identifier.
    assert "shared RDS instance opsconsole-shared-pg" in body


# --- tenant_status, the rollouts' verify check ---------------------------------------------


def test_tenant_status_healthy_degraded_down(aws, db):
    fine = active_tenant("t9fine")
    put_lambda_minutes("t9fine", invocations=100, errors=0)
    # Recorded alarms that CloudWatch lacks count as missing.
    status, reason = tenant_status(fine)
    assert status == DEGRADED and "missing alarm opsconsole-t9fine-errors" in reason
    put_alarms("t9fine")
    assert tenant_status(fine) == (HEALTHY, "1,000 invocations, 0.0% errors in the last hour")

    flaky = active_tenant("t9flaky")
    put_lambda_minutes("t9flaky", invocations=100, errors=10)
    status, reason = tenant_status(flaky)
    assert status == DEGRADED and "10.0% of invocations failed" in reason

    broken = active_tenant("t9broken")
    put_lambda_minutes("t9broken", invocations=100, errors=90)
    assert tenant_status(broken)[0] == DOWN

    suspended = active_tenant("t9susp")
    Tenant.objects.filter(pk=suspended.pk).update(status=TenantStatus.SUSPENDED)
    suspended.refresh_from_db()
    assert tenant_status(suspended)[0] == DOWN


def test_tenant_status_when_cloudwatch_fails_is_never_healthy(aws, db):
    tenant = active_tenant("t9blind")
    cw = client("cloudwatch", REGION)
    with Stubber(cw) as stubber:
        stubber.add_client_error(
            "get_metric_data", service_error_code="AccessDenied", http_status_code=403
        )
        stub_alarms(stubber)
        status, reason = tenant_status(tenant)
    assert status == DEGRADED and "metrics unavailable" in reason

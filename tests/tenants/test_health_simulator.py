"""The sandbox's simulated metrics: written with the dimensions the pages read, a daily
pattern, one error spike, a dip at each deploy, log lines; never outside the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from opsconsole.aws import cloudwatch, logs
from opsconsole.jobs.models import Job, JobStatus
from opsconsole.sandbox.metrics import daily_load, simulate_metrics, spike_tenant, tenant_minute
from tenants import naming
from tenants.health.metrics import tenant_metrics, tenant_targets
from tenants.health.status import DEGRADED, tenant_status
from tenants.tasks import sandbox_simulate_metrics

from .test_health_pages import REGION, active_tenant, health_cache_prefix, put_alarms  # noqa: F401


def test_refuses_outside_the_sandbox(db, settings):
    settings.SANDBOX = False
    with pytest.raises(ImproperlyConfigured):
        simulate_metrics()
    assert sandbox_simulate_metrics() == {"skipped": "not the sandbox"}


def test_beat_schedules_it_in_the_sandbox_only(settings):
    assert settings.CELERY_BEAT_SCHEDULE["sandbox-simulate-metrics"]["task"] == (
        "tenants.tasks.sandbox_simulate_metrics"
    )


def test_daily_pattern_spike_and_deploy_dip():
    assert daily_load(15 * 3600) == pytest.approx(1.0)
    assert daily_load(3 * 3600) == pytest.approx(0.1)
    ts = 1_800_000_000 // 3600 * 3600  # on the hour
    quiet = tenant_minute("acme", ts + 45 * 60, spike=False, deploys=[])
    spiking = tenant_minute("acme", ts + 45 * 60, spike=True, deploys=[])
    assert spiking.errors > 10 * max(quiet.errors, 1)
    assert tenant_minute("acme", ts + 5 * 60, spike=True, deploys=[]) == tenant_minute(
        "acme", ts + 5 * 60, spike=False, deploys=[]
    )  # outside minutes 40-49 the spike tenant is like any other
    dip = tenant_minute("acme", ts + 45 * 60, spike=False, deploys=[ts + 45 * 60 - 10])
    assert dip.invocations < quiet.invocations * 0.5 and dip.duration_ms > quiet.duration_ms * 2
    # Seeded: the same minute is drawn the same.
    assert tenant_minute("acme", ts, spike=False, deploys=[]) == tenant_minute(
        "acme", ts, spike=False, deploys=[]
    )
    assert spike_tenant(["b", "a", "c"]) == spike_tenant(["c", "b", "a"])


def test_writes_what_the_health_page_reads(aws, db):
    calm = active_tenant("t9simcalm")
    spiky = active_tenant("t9simspike")
    for tenant in (calm, spiky):
        logs.create_log_group(name=naming.log_group_name(tenant.slug), tags={})
        put_alarms(tenant.slug)
    spiking = spike_tenant(["t9simcalm", "t9simspike"])
    # During the spike (minutes 40-49 of the hour), with a deploy 1 minute ago.
    now = datetime.now(UTC).replace(minute=47, second=5, microsecond=0)
    if now > datetime.now(UTC):
        now -= timedelta(hours=1)
    Job.objects.create(
        kind="tenant_reconcile",
        subject_type="tenant",
        subject_id="t9simcalm",
        status=JobStatus.SUCCEEDED,
        finished_at=now - timedelta(seconds=60),
    )

    summary = simulate_metrics(now=now, backfill_minutes=30)
    assert summary["tenants"] == 2 and summary["minutes"] == 31
    assert summary["datums"] == 2 * 31 * 13  # 5 Lambda + 5 API + 3 RDS each minute
    assert simulate_metrics(now=now)["minutes"] == 0  # each minute is written once

    tenant = spiky if spiking == "t9simspike" else calm
    metrics = tenant_metrics(
        tenant, tenant_targets(tenant, list(tenant.resources.all())), with_percentiles=False
    )
    series = metrics.standard.value
    assert series is not None and series.points("fn_invocations")
    assert series.points("api_requests") and series.points("db_cpu")
    status, reason = tenant_status(tenant)
    assert status == DEGRADED and "in ALARM" in reason

    lines = logs.filter_events(
        name=naming.log_group_name(tenant.slug),
        pattern="ERROR",
        start_ms=int((now - timedelta(hours=1)).timestamp() * 1000),
        limit=50,
    )
    assert lines and all("(simulated)" in e["message"] for e in lines)
    alarms = cloudwatch.describe_alarms(names=[naming.alarm_name(spiking, "errors")])
    assert alarms[naming.alarm_name(spiking, "errors")]["StateValue"] == "ALARM"

"""A tenant's database choices (engine version, Multi-AZ, backup and maintenance windows,
Aurora auto-pause) and log retention: checked, created with, converged and drift-checked.

In-process moto; what moto lacks (RDS's list of engine versions, windows that touch) comes
from the local AWS's patches of moto (``rds_engine_versions``, ``rds_windows``), installed
here in process as the local AWS server installs them. Slugs ``hd-*``; these tests make no
PostgreSQL databases (in-process moto's instances are metadata only).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache

from opsconsole.aws import rds
from opsconsole.aws.clients import client
from opsconsole.jobs.models import Job, JobStep
from opsconsole.jobs.registry import StepWait
from opsconsole.sandbox.localaws import rds_engine_versions, rds_windows
from tenants import naming
from tenants.models import Isolation, Tenant, TenantStatus
from tenants.provisioning import log_group
from tenants.provisioning.database import step_database
from tenants.provisioning.database_choices import (
    database_choice_problems,
    database_plan,
    engine_versions,
)
from tenants.provisioning.database_cluster import serverless_drift
from tenants.provisioning.database_instance import dedicated_drift

REGION = "us-east-1"


@pytest.fixture
def rds_catalogue(seeded):
    """Also RDS's window check (moto takes touching windows for overlapping ones)."""
    rds_engine_versions.install()
    rds_windows.install()
    cache.clear()
    yield seeded
    cache.clear()


def make(slug: str, isolation: str = Isolation.DEDICATED, **spec) -> Tenant:
    spec.setdefault("db_deletion_protection", False)
    return Tenant.objects.create(
        name=slug, slug=slug, region=REGION, isolation=isolation,
        status=TenantStatus.ACTIVE, **spec,
    )  # fmt: skip


def converge(tenant: Tenant) -> dict:
    """The database step as the worker runs it: again after each StepWait."""
    tenant.refresh_from_db()
    job = Job.objects.create(kind="tenant_reconcile", subject_type="tenant", subject_id=tenant.slug)
    step = JobStep.objects.create(job=job, position=1, name="database", label="Database")
    for _ in range(5):
        try:
            return step_database(job, step)
        except StepWait:
            continue
    raise AssertionError("still waiting")


def instance(slug: str) -> dict:
    return client("rds").describe_db_instances(DBInstanceIdentifier=naming.db_instance_id(slug))[
        "DBInstances"
    ][0]


def cluster(slug: str) -> dict:
    return client("rds").describe_db_clusters(DBClusterIdentifier=naming.db_cluster_id(slug))[
        "DBClusters"
    ][0]


def drifted(drifts) -> dict:
    return {d.field: (d.expected, d.actual) for d in drifts}


def spy(monkeypatch, name: str) -> list[dict]:
    """Record every call of ``opsconsole.aws.rds.<name>`` (still made)."""
    calls: list[dict] = []
    real = getattr(rds, name)

    def recording(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(rds, name, recording)
    return calls


def test_dedicated_instance_gets_its_choices_and_drift_checks_them(rds_catalogue):
    tenant = make(
        "hd-ded",
        db_engine_version="15.10",
        db_multi_az=True,
        db_backup_window="03:00-04:00",
        db_maintenance_window="Mon:04:00-Mon:05:00",
    )
    assert database_choice_problems(tenant) == []
    converge(tenant)

    made = instance("hd-ded")
    assert made["EngineVersion"] == "15.10" and made["MultiAZ"] is True
    assert made["PreferredBackupWindow"] == "03:00-04:00"
    assert made["PreferredMaintenanceWindow"] == "mon:04:00-mon:05:00"
    assert dedicated_drift(tenant)[0] == []

    client("rds").modify_db_instance(
        DBInstanceIdentifier=naming.db_instance_id("hd-ded"),
        MultiAZ=False,
        PreferredBackupWindow="07:00-08:00",
        PreferredMaintenanceWindow="tue:09:00-tue:10:00",
        ApplyImmediately=True,
    )
    assert drifted(dedicated_drift(tenant)[0]) == {
        "multi_az": (True, False),
        "backup_window": ("03:00-04:00", "07:00-08:00"),
        "maintenance_window": ("mon:04:00-mon:05:00", "tue:09:00-tue:10:00"),
    }
    out = converge(tenant)
    assert set(out["modified"]) == {"multi_az", "backup_window", "maintenance_window"}
    assert dedicated_drift(tenant)[0] == []


def test_an_engine_upgrade_is_applied_only_when_the_tenant_asks_and_never_down(
    rds_catalogue, settings, monkeypatch
):
    tenant = make("hd-upg")
    converge(tenant)
    assert instance("hd-upg")["EngineVersion"] == "16.4"  # the console's default

    # A new console default never upgrades a running tenant.
    settings.TENANT_DB_ENGINE_VERSION = "16.8"
    calls = spy(monkeypatch, "modify_db_instance")
    assert converge(tenant)["modified"] == []
    assert calls == [] and dedicated_drift(tenant)[0] == []

    # The tenant asks for 17.4: a major upgrade, in the maintenance window.
    Tenant.objects.filter(pk=tenant.pk).update(db_engine_version="17.4")
    tenant.refresh_from_db()
    assert database_choice_problems(tenant) == []
    assert drifted(dedicated_drift(tenant)[0]) == {"engine_version": ("17.4", "16.4")}
    assert converge(tenant)["modified"] == ["engine_version"]
    [upgrade] = calls
    assert upgrade["engine_version"] == "17.4"
    assert upgrade["allow_major_version_upgrade"] is True
    assert upgrade["apply_immediately"] is False
    assert instance("hd-upg")["EngineVersion"] == "17.4"
    assert dedicated_drift(tenant)[0] == []

    # Back to 16.8: refused when stored, and a step that meets it anyway leaves RDS alone.
    Tenant.objects.filter(pk=tenant.pk).update(db_engine_version="16.8")
    tenant.refresh_from_db()
    assert database_choice_problems(tenant) == [
        "engine version 16.8: the database runs 17.4 and RDS cannot downgrade "
        "(choose 17.4 or later)"
    ]
    out = converge(tenant)
    assert out["modified"] == [] and "RDS cannot downgrade" in out["notes"][0]
    assert len(calls) == 1 and instance("hd-upg")["EngineVersion"] == "17.4"
    assert drifted(dedicated_drift(tenant)[0]) == {"engine_version": ("16.8", "17.4")}


def test_aurora_pauses_after_the_tenants_delay_and_keeps_its_windows(rds_catalogue):
    tenant = make(
        "hd-srv",
        Isolation.SERVERLESS,
        serverless_min_acu=Decimal("0"),
        serverless_max_acu=Decimal("4"),
        serverless_seconds_until_auto_pause=900,
        db_engine_version="16.6",
        db_backup_window="02:00-02:30",
        db_maintenance_window="sun:05:00-sun:06:00",
    )
    assert database_choice_problems(tenant) == []
    converge(tenant)

    made = cluster("hd-srv")
    assert made["ServerlessV2ScalingConfiguration"] == {
        "MinCapacity": 0.0,
        "MaxCapacity": 4.0,
        "SecondsUntilAutoPause": 900,
    }
    assert made["EngineVersion"] == "16.6"
    assert (made["PreferredBackupWindow"], made["PreferredMaintenanceWindow"]) == (
        "02:00-02:30",
        "sun:05:00-sun:06:00",
    )
    assert serverless_drift(tenant)[0] == []

    Tenant.objects.filter(pk=tenant.pk).update(
        serverless_seconds_until_auto_pause=3600, db_backup_window="01:00-01:30"
    )
    tenant.refresh_from_db()
    assert drifted(serverless_drift(tenant)[0]) == {
        "seconds_until_auto_pause": (3600, 900),
        "backup_window": ("01:00-01:30", "02:00-02:30"),
    }
    out = converge(tenant)
    assert {"seconds_until_auto_pause", "backup_window"} <= set(out["modified"])
    assert cluster("hd-srv")["ServerlessV2ScalingConfiguration"]["SecondsUntilAutoPause"] == 3600
    assert serverless_drift(tenant)[0] == []


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"db_backup_window": "3:00-4:00"}, "backup window '3:00-4:00': hh:mm-hh:mm"),
        ({"db_backup_window": "25:00-26:00"}, "hours 00-23"),
        ({"db_backup_window": "03:00-03:20"}, "backup window '03:00-03:20': at least 30"),
        ({"db_maintenance_window": "mon 04:00-05:00"}, "ddd:hh:mm-ddd:hh:mm"),
        ({"db_maintenance_window": "xyz:04:00-xyz:05:00"}, "ddd:hh:mm-ddd:hh:mm"),
        ({"db_maintenance_window": "mon:04:00-mon:04:10"}, "at least 30 minutes"),
        ({"db_maintenance_window": "mon:04:00-wed:04:00"}, "at most 24 hours"),
        (
            {"db_backup_window": "03:00-05:00", "db_maintenance_window": "mon:04:30-mon:05:30"},
            "must not overlap",
        ),
        (
            # Sunday's backups run past midnight into Monday's maintenance window.
            {"db_backup_window": "23:30-00:30", "db_maintenance_window": "mon:00:00-mon:01:00"},
            "must not overlap",
        ),
        ({"db_engine_version": "16.99"}, "engine version 16.99: RDS offers postgres 13.20"),
        ({"db_engine_version": "sixteen"}, "engine version 'sixteen': like 16.4"),
        ({"serverless_seconds_until_auto_pause": 900}, "only for an Aurora Serverless v2"),
    ],
)
def test_bad_choices_are_refused(rds_catalogue, spec, problem):
    tenant = Tenant(slug="hd-bad", region=REGION, isolation=Isolation.DEDICATED, **spec)
    problems = database_choice_problems(tenant)
    assert len(problems) == 1 and problem in problems[0], problems


def test_choices_that_fit_only_some_databases(rds_catalogue):
    touching = Tenant(
        slug="hd-ok",
        region=REGION,
        isolation=Isolation.DEDICATED,
        db_backup_window="03:00-04:00",
        db_maintenance_window="mon:04:00-mon:05:00",
    )
    assert database_choice_problems(touching) == []  # windows may touch
    serverless = Tenant(
        slug="hd-s",
        region=REGION,
        isolation=Isolation.SERVERLESS,
        db_multi_az=True,
        serverless_min_acu=Decimal("0.5"),
        serverless_seconds_until_auto_pause=100,
    )
    assert database_choice_problems(serverless) == [
        "Multi-AZ: only for a dedicated instance",
        "auto-pause: 300 to 86400 seconds",
    ]
    serverless.serverless_seconds_until_auto_pause = 600
    assert database_choice_problems(serverless)[1] == (
        "auto-pause: only with a minimum of 0 ACU (Aurora pauses at 0)"
    )
    shared = Tenant(slug="hd-sh", region=REGION, isolation=Isolation.SHARED, db_multi_az=True)
    assert database_choice_problems(shared) == [
        "Multi-AZ: only for a dedicated instance or an Aurora cluster"
    ]


def test_engine_versions_are_rds_s_and_cached(rds_catalogue, monkeypatch):
    calls = spy(monkeypatch, "describe_db_engine_versions")
    assert engine_versions(REGION, "postgres")[-3:] == ["16.4", "16.8", "17.4"]
    assert engine_versions(REGION, "postgres") == engine_versions(REGION, "postgres")
    assert "16.6" in engine_versions(REGION, "aurora-postgresql")
    assert [c["engine"] for c in calls] == ["postgres", "aurora-postgresql"]


def test_the_plan_says_what_the_database_will_be():
    dedicated = Tenant(
        slug="hd-p",
        isolation=Isolation.DEDICATED,
        db_engine_version="15.10",
        db_multi_az=True,
        db_backup_window="03:00-04:00",
        db_maintenance_window="mon:04:00-mon:05:00",
    )
    assert database_plan(dedicated) == [
        "PostgreSQL 15.10, Multi-AZ, backups 03:00-04:00 UTC, maintenance mon 04:00-05:00 UTC"
    ]
    serverless = Tenant(
        slug="hd-q",
        isolation=Isolation.SERVERLESS,
        serverless_min_acu=Decimal("0"),
        serverless_seconds_until_auto_pause=900,
    )
    assert database_plan(serverless) == [
        "Aurora PostgreSQL 16.4, backups in a window RDS picks, maintenance in a window RDS picks",
        "Aurora pauses after 15 min idle",
    ]
    assert database_plan(Tenant(slug="hd-r", isolation=Isolation.SHARED)) == []


def test_log_retention_is_the_tenants_else_the_consoles(rds_catalogue, settings):
    tenant = make("hd-logs", Isolation.SHARED, log_retention_days=90)
    job = Job.objects.create(kind="tenant_provision", subject_type="tenant", subject_id="hd-logs")
    step = JobStep.objects.create(job=job, position=1, name="log_group", label="Log group")
    assert log_group.step_log_group(job, step)["retention_days"] == 90
    name = naming.log_group_name("hd-logs")
    [group] = client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    assert group["retentionInDays"] == 90
    assert log_group.log_group_drift(tenant) == []

    Tenant.objects.filter(pk=tenant.pk).update(log_retention_days=None)
    tenant.refresh_from_db()
    days = settings.TENANT_LOG_RETENTION_DAYS
    [found] = log_group.log_group_drift(tenant)
    assert (found.field, found.expected, found.actual) == ("retention_days", days, 90)
    assert log_group.step_log_group(job, step)["retention_days"] == days
    assert log_group.log_group_drift(tenant) == []

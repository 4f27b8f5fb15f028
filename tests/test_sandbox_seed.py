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
from opsconsole.jobs.runner import job_execute
from opsconsole.jobs.services import job_create
from opsconsole.sandbox import demo_release
from opsconsole.sandbox.seed import sandbox_seed
from tenants import release_source

pytestmark = pytest.mark.django_db


def _restart_moto() -> None:
    """What a moto server restart does: every AWS resource is gone, the console DB stays."""
    from moto.core.base_backend import BackendDict

    BackendDict.reset()
    reset_clients()


def _vpcs_named(name: str) -> list[dict]:
    return client("ec2").describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [name]}])["Vpcs"]


ALL = demo_release.DEMO_VERSIONS


def test_seed_twice_is_one_baseline(aws, settings):
    names = settings.BASELINE
    first = sandbox_seed(releases=ALL)
    second = sandbox_seed(releases=ALL)

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

    # ECR: an image per demo release, tagged with its version, digest = sha256 of its
    # manifest bytes.
    repo = names["release_repository"]
    images = client("ecr").describe_images(repositoryName=repo)["imageDetails"]
    assert sorted(tag for i in images for tag in i["imageTags"]) == sorted(
        demo_release.DEMO_VERSIONS
    )
    for image in images:
        manifest = ecr.get_image_manifest(repository=repo, digest=image["imageDigest"])
        assert image["imageDigest"] == "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
    [first_image] = [i for i in images if i["imageTags"] == [demo_release.DEMO_VERSION]]
    assert first["image_digest"] == first_image["imageDigest"]

    # S3: one object per release, keyed by the zip's own sha256.
    bucket = names["artifact_bucket"]
    objects = client("s3").list_objects_v2(Bucket=bucket)["Contents"]
    assert len(objects) == 3
    bodies = {}
    for obj in objects:
        body = s3.get_object_bytes(bucket=bucket, key=obj["Key"])
        assert obj["Key"] == f"releases/sha256/{hashlib.sha256(body).hexdigest()}.zip"
        bodies[obj["Key"]] = body

    # The console DB: the three demo releases in version order, with their migrations.
    releases = list(Release.objects.order_by("created_at", "id"))
    assert [r.version for r in releases] == list(demo_release.DEMO_VERSIONS)
    assert first["releases"] == list(demo_release.DEMO_VERSIONS)
    assert releases[0].pk == first["release_id"]
    # The newest is broken on purpose: new tenants start on the working one before it.
    assert [r.version for r in releases if r.starts_new_tenants] == ["2026.12.0-demo"]
    assert release_source.get().newest_version() == "2026.12.0-demo"
    for release in releases:
        assert (release.artifact_type, release.zip_bucket) == ("zip", bucket)
        body = bodies[release.zip_key]
        assert release.zip_sha256 == hashlib.sha256(body).hexdigest()
        assert (release.runtime, release.handler) == ("python3.12", "app.handler")
        assert (release.health_method, release.health_path) == ("GET", "/healthz")
        assert (release.health_statuses, release.health_timeout_s) == ("200-299", 15)
        names_in_zip = zipfile.ZipFile(io.BytesIO(body)).namelist()
        assert {"app.py", "db.py", "web.py", "RELEASE", "pg8000/native.py"} <= set(names_in_zip)
        for migration in release.migrations.all():
            assert migration.sha256 == ReleaseMigration.checksum(migration.sql)
    assert [[m.name for m in r.migrations.order_by("version")] for r in releases] == [
        ["0001_notes.sql"],
        ["0001_notes.sql", "0002_notes_author.sql"],
        ["0001_notes.sql", "0002_notes_author.sql"],
    ]


def test_seed_registers_the_first_demo_release_unless_asked_for_more(aws):
    """A new tenant starts on the newest release: by default that is the first demo."""
    assert sandbox_seed()["releases"] == [demo_release.DEMO_VERSION]
    assert list(Release.objects.values_list("version", flat=True)) == [demo_release.DEMO_VERSION]

    later = sandbox_seed(releases=ALL)

    assert later["releases"] == list(ALL)
    assert later["created"][-3:] == [
        "release 2026.12.0-demo",
        "release 2026.12.1-demo-broken",
        "new tenants start on 2026.12.0-demo",
    ]
    with pytest.raises(ValueError, match="No demo release"):
        sandbox_seed(releases=["1.0"])


def test_seed_after_a_moto_restart_rebuilds_the_same_artifacts(aws):
    first = sandbox_seed(releases=ALL)
    _restart_moto()
    assert _vpcs_named("opsconsole") == []

    again = sandbox_seed(releases=ALL)

    assert f"release {demo_release.DEMO_VERSION}" not in again["created"]
    assert any(c.startswith("vpc ") for c in again["created"])
    assert again["release_id"] == first["release_id"]
    assert again["image_digest"] == first["image_digest"]
    assert again["zip_key"] == first["zip_key"]
    assert again["warnings"] == []
    assert again["releases"] == first["releases"]
    assert Release.objects.count() == 3
    assert ReleaseMigration.objects.count() == 5
    # The registered releases' zips are there again, byte for byte.
    for release in Release.objects.all():
        assert s3.head_object(bucket=release.zip_bucket, key=release.zip_key) is not None


def test_seed_warns_about_a_demo_release_registered_by_another_build(aws):
    sandbox_seed(releases=ALL)
    Release.objects.filter(version="2026.12.0-demo").update(zip_key="releases/sha256/old.zip")

    again = sandbox_seed(releases=ALL)

    [warning] = again["warnings"]
    assert "2026.12.0-demo points at" in warning and "make clean" in warning
    # Immutable: the seed did not rewrite it.
    assert Release.objects.get(version="2026.12.0-demo").zip_key == "releases/sha256/old.zip"


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
    assert f"releases   {', '.join(ALL)} (zip)" in text
    assert Release.objects.count() == 3
    assert "password" not in text
    assert err.getvalue() == ""


def test_demo_artifacts_are_deterministic():
    """The app is in the zip as source, with pg8000 and what it imports; the image's one
    layer holds the same files under /var/task, named in the config."""
    built = demo_release.build_demo_release.__wrapped__(demo_release.DEMO_VERSION)
    assert built == demo_release.build_demo_release.__wrapped__(demo_release.DEMO_VERSION)
    files = built.files
    assert demo_release.build_zip(files) == demo_release.build_zip(dict(reversed(files.items())))
    assert demo_release.build_layer_tar(files) == demo_release.build_layer_tar(files)

    with zipfile.ZipFile(io.BytesIO(built.zip_bytes)) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert zf.read("RELEASE") == b"2026.11.0-demo\n"
        assert zf.read("app.py") == (demo_release.APP_DIR / "app_notes.py").read_bytes()
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
    tops = {name.split("/")[0] for name in names}
    assert {"pg8000", "scramp", "asn1crypto", "dateutil", "six.py"} <= tops
    assert "pg8000-1.31.6.dist-info" in tops  # pg8000 reads its version from there
    assert not any("__pycache__" in n or n.endswith((".pyc", "/RECORD")) for n in names)

    [layer] = built.image_layers
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        member = tar.getmember("var/task/app.py")
        assert member.mtime == 0
        assert tar.extractfile(member).read() == files["app.py"]
        assert tar.getmember("var/task/pg8000").isdir()
    config = json.loads(built.image_config)
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["config"]["Cmd"] == ["app.handler"]
    assert config["rootfs"]["diff_ids"] == [
        "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
    ]

    # Each release is its own code: the broken one ships the module its handler imports.
    broken = demo_release.build_demo_release("2026.12.1-demo-broken").files
    assert broken["app.py"] == (demo_release.APP_DIR / "app_broken_health.py").read_bytes()
    assert "app_notes_author.py" in broken


def test_demo_migrations_apply_on_postgresql():
    from deployments.migration_files import parse_migration_files

    migrations = demo_release.build_demo_release("2026.12.0-demo").migrations
    # They pass the checks every registered release's migrations pass.
    specs = parse_migration_files([(m.name, m.sql) for m in migrations])
    assert [(s.version, s.checksum) for s in specs] == [(m.version, m.sha256) for m in migrations]
    with connection.cursor() as cur:
        cur.execute(
            "CREATE SCHEMA demo_migration_check; SET LOCAL search_path = demo_migration_check"
        )
        cur.execute(migrations[0].sql)
        cur.execute("INSERT INTO notes (text) VALUES ('before 0002')")
        cur.execute(migrations[1].sql)
        cur.execute("INSERT INTO notes (text, author) VALUES ('after', 'ada')")
        cur.execute("SELECT text, author FROM notes ORDER BY id")
        assert cur.fetchall() == [("before 0002", None), ("after", "ada")]
    # The test's transaction rolls all of it back.

"""A release's artifact reaches a cell's account: Lambda reads code only from its own
account's bucket or registry (in its region), so the first tenant there copies it, read
with the console's own credentials and written with the cell's."""

from __future__ import annotations

import hashlib

import pytest
from django.conf import settings

from deployments.artifacts import ensure_artifact_in_region
from deployments.releases import release_register
from deployments.tenant_release import DeploymentsReleaseSource
from opsconsole.aws import ecr, lambda_, s3
from opsconsole.aws.clients import aws_account, client
from opsconsole.jobs.models import JobStatus
from tests.awsaccounts.conftest import SECOND
from tests.deployments.test_release import docker_save, zip_input
from tests.local_postgres import seed_in_process
from tests.tenants.conftest import make_tenant, run_job, seeded, tenant_dbs  # noqa: F401

CELL_BUCKET = f"{settings.BASELINE['artifact_bucket']}-{SECOND}-us-east-1"


@pytest.mark.usefixtures("seeded", "tenant_dbs")
def test_a_zip_goes_into_the_cells_own_bucket_and_the_function_reads_it(second_account):
    with aws_account(second_account):
        seed_in_process()  # the cell's own baseline
    release = release_register(zip_input("2026.12.40"))
    tenant = make_tenant("t9-cellzip", aws_account=second_account, desired_release="2026.12.40")
    job = run_job("tenant_provision", tenant)
    assert job.status == JobStatus.SUCCEEDED, [(s.name, s.error) for s in job.steps.all()]
    with aws_account(second_account):
        body = s3.get_object_bytes(bucket=CELL_BUCKET, key=release.zip_key)
        assert hashlib.sha256(body).hexdigest() == release.zip_sha256
        located = DeploymentsReleaseSource().artifact("2026.12.40", region="us-east-1")
        assert located.s3_bucket == CELL_BUCKET
        function = lambda_.get_function(name="opsconsole-t9-cellzip")
        assert function["Configuration"]["CodeSha256"] == located.code_sha256
    # The cell's bucket is the cell's: the console's account does not own it.
    owned = {b["Name"] for b in client("s3").list_buckets()["Buckets"]}
    assert CELL_BUCKET not in owned and release.zip_bucket in owned
    # Outside the cell, the same release reads from the console's own bucket.
    home = DeploymentsReleaseSource().artifact("2026.12.40", region="us-east-1")
    assert home.s3_bucket == release.zip_bucket


@pytest.mark.usefixtures("seeded")
def test_an_image_is_pushed_into_the_cells_registry_once(second_account):
    archive, _, _ = docker_save("2026.12.41")
    release = release_register(zip_input("2026.12.41", artifact="archive", archive_bytes=archive))
    with aws_account(second_account):
        first = ensure_artifact_in_region(release, region="us-east-1")
        again = ensure_artifact_in_region(release, region="us-east-1")
        found = ecr.describe_image(
            repository=settings.BASELINE["release_repository"],
            tag_or_digest=release.image_digest,
            region="us-east-1",
        )
        uri = DeploymentsReleaseSource().artifact("2026.12.41", region="eu-west-1").image_uri
    assert first["pushed"] is True and again["pushed"] is False
    assert found["imageDigest"] == release.image_digest
    assert uri.startswith(f"{SECOND}.dkr.ecr.eu-west-1.amazonaws.com/")
    assert uri.endswith(f"@{release.image_digest}")


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_the_console_account_keeps_its_locations(region):
    release = release_register(zip_input(f"2026.12.5{len(region)}"))
    located = DeploymentsReleaseSource().artifact(release.version, region=region)
    expected = release.zip_bucket if region == "us-east-1" else f"{release.zip_bucket}-{region}"
    assert located.s3_bucket == expected


@pytest.mark.usefixtures("seeded")
def test_a_cells_shared_instance_is_sampled_with_the_cells_master_secret(second_account):
    """Cells name their shared instance as the console does: each is read in its own
    account (its master secret there), under a key of its own."""
    from tenants.health import shared_db

    with aws_account(second_account):
        seed_in_process()
    instance = settings.BASELINE["shared_db_instance"]
    client("secretsmanager").delete_secret(
        SecretId=settings.BASELINE["shared_db_master_secret"], ForceDeleteWithoutRecovery=True
    )
    cell = shared_db.shared_db_read(
        region="us-east-1", instance=instance, account=second_account.pk
    )
    assert cell.error == "" and "postgres" in cell.value["rows"]
    own = shared_db.shared_db_read(region="us-east-1", instance=instance)
    assert own.value is None and own.error  # the console's secret is gone, the cell's is not

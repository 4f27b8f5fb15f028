"""Registering releases against in-process moto: zips, images by tag, pushed archives, and
bad input refused with nothing stored."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
from django.conf import settings

from deployments.models import Release
from deployments.releases import ReleaseInput, ReleaseRefused, release_register
from opsconsole.aws import ecr, s3
from opsconsole.aws.clients import client
from opsconsole.jobs.models import Job
from opsconsole.jobs.runner import job_execute
from opsconsole.sandbox.demo_release import (
    DEMO_VERSION,
    app_files,
    build_image_config,
    build_layer_tar,
    build_zip,
)

MIGRATIONS = [("0001_init.sql", "CREATE TABLE t (id int);\n")]


@pytest.fixture
def seeded(aws, db):
    """The sandbox baseline and demo release in in-process moto."""
    from opsconsole.sandbox.seed import sandbox_seed

    return sandbox_seed()


def zip_input(version="2026.12.0", **changes) -> ReleaseInput:
    return ReleaseInput(
        **{
            "version": version,
            "artifact": "zip",
            "zip_bytes": build_zip(app_files(version)),
            "runtime": "python3.12",
            "handler": "app.handler",
            "migration_files": MIGRATIONS,
            **changes,
        }
    )


def _tar(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def image_parts(version: str) -> tuple[bytes, list[bytes]]:
    layer = build_layer_tar(app_files(version))
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    return build_image_config(version=version, diff_ids=[diff_id]), [layer]


def docker_save(version: str) -> tuple[bytes, bytes, list[bytes]]:
    config, layers = image_parts(version)
    entries = {"abc.json": config}
    for i, layer in enumerate(layers):
        entries[f"layer{i}/layer.tar"] = layer
    manifest = [
        {
            "Config": "abc.json",
            "RepoTags": [f"app:{version}"],
            "Layers": [f"layer{i}/layer.tar" for i in range(len(layers))],
        }
    ]
    entries["manifest.json"] = json.dumps(manifest).encode()
    return _tar(entries), config, layers


def oci_layout(version: str) -> bytes:
    config, layers = image_parts(version)

    def blob(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "config": {"digest": blob(config), "size": len(config)},
            "layers": [{"digest": blob(layer), "size": len(layer)} for layer in layers],
        }
    ).encode()
    entries = {f"blobs/sha256/{blob(b)[7:]}": b for b in [config, *layers, manifest]}
    entries["index.json"] = json.dumps(
        {"schemaVersion": 2, "manifests": [{"digest": blob(manifest)}]}
    ).encode()
    entries["oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
    return _tar(entries)


def artifact_keys() -> set[str]:
    resp = client("s3").list_objects_v2(Bucket=settings.BASELINE["artifact_bucket"])
    return {o["Key"] for o in resp.get("Contents", [])}


def test_zip_is_stored_under_its_sha256(seeded):
    data = zip_input()
    release = release_register(data)
    sha = hashlib.sha256(data.zip_bytes).hexdigest()
    assert release.zip_sha256 == sha and release.zip_key == f"releases/sha256/{sha}.zip"
    body = s3.get_object_bytes(bucket=release.zip_bucket, key=release.zip_key)
    assert body == data.zip_bytes
    assert [m.name for m in release.migrations.all()] == ["0001_init.sql"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"zip_bytes": b"PK\x03\x04 this is not really a zip"}, "not a zip archive"),
        ({"zip_bytes": b""}, "missing or empty"),
        ({"runtime": ""}, "a zip needs a runtime"),
        ({"migration_files": [("init.sql", "SELECT 1;")]}, "migrations: init.sql"),
        ({"migration_files": [("0001_a.sql", "BEGIN; SELECT 1; COMMIT;")]}, "migrations:"),
        ({"artifact": "archive", "archive_bytes": _tar({"x.txt": b"x"})}, "no manifest.json"),
        ({"artifact": "archive", "archive_bytes": b"not a tar at all"}, "Not a tar archive"),
        ({"artifact": "image", "image": "opsconsole/tenant-app:nope"}, "has no image nope"),
        ({"artifact": "image", "image": "no-such-repo:1"}, "no ECR repository"),
        ({"version": DEMO_VERSION}, "already registered"),
        ({"version": "bad version!"}, "version:"),
    ],
)
def test_bad_input_is_refused_with_nothing_stored(seeded, changes, reason):
    before_keys, before_releases = artifact_keys(), Release.objects.count()
    before_images = client("ecr").list_images(repositoryName="opsconsole/tenant-app")["imageIds"]
    with pytest.raises(ReleaseRefused) as refused:
        release_register(zip_input(**changes))
    assert reason in str(refused.value)
    assert Release.objects.count() == before_releases
    assert artifact_keys() == before_keys
    after_images = client("ecr").list_images(repositoryName="opsconsole/tenant-app")["imageIds"]
    assert len(after_images) == len(before_images)


def test_image_tag_is_resolved_and_pinned_to_its_digest(seeded):
    release = release_register(
        ReleaseInput(
            version="2026.12.0", artifact="image", image=f"opsconsole/tenant-app:{DEMO_VERSION}"
        )
    )
    assert release.image_digest == seeded["image_digest"]
    assert release.image_uri.endswith(f"opsconsole/tenant-app:{DEMO_VERSION}")


@pytest.mark.parametrize("form", ["docker-save", "oci"])
def test_archive_is_pushed_through_the_ecr_layer_api(seeded, form):
    version = f"2026.12.{'1' if form == 'oci' else '2'}"
    if form == "oci":
        archive = oci_layout(version)
        config, layers = image_parts(version)
    else:
        archive, config, layers = docker_save(version)
    release = release_register(zip_input(version, artifact="archive", archive_bytes=archive))
    manifest = ecr.build_manifest(config_blob=config, layers=layers)
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert release.artifact_type == "image" and release.image_digest == digest
    repo = settings.BASELINE["release_repository"]
    # Registration only kept the archive; a worker job pushes it.
    assert ecr.describe_image(repository=repo, tag_or_digest=version) is None
    push = Job.objects.get(kind="release_push", subject_id=version)
    assert job_execute(push.pk, owner="test-worker") == "succeeded"
    push.refresh_from_db()
    assert push.steps.get().output["pushed"] is True
    # ECR has the manifest under that digest and tag, and every blob it names.
    found = ecr.describe_image(repository=repo, tag_or_digest=version)
    assert found["imageDigest"] == digest
    assert ecr.get_image_manifest(repository=repo, digest=digest) == manifest.decode()
    blobs = [json.loads(manifest)["config"]["digest"]] + [
        layer["digest"] for layer in json.loads(manifest)["layers"]
    ]
    available = client("ecr").batch_check_layer_availability(
        repositoryName=repo, layerDigests=blobs
    )["layers"]
    assert {b["layerDigest"] for b in available if b["layerAvailability"] == "AVAILABLE"} == set(
        blobs
    )
    # The archive is kept for pushing to other regions.
    assert f"releases/images/{digest.replace(':', '-')}.tar" in artifact_keys()


def test_artifact_is_pushed_to_another_region_once(seeded):
    """Also before the release_push job ran: a deploy pushes what it needs itself."""
    from deployments.artifacts import ensure_artifact_in_region

    archive, _, _ = docker_save("2026.12.3")
    release = release_register(zip_input("2026.12.3", artifact="archive", archive_bytes=archive))
    first = ensure_artifact_in_region(release, region="eu-west-1")
    again = ensure_artifact_in_region(release, region="eu-west-1")
    assert first["pushed"] is True and again["pushed"] is False
    found = ecr.describe_image(
        repository=settings.BASELINE["release_repository"],
        tag_or_digest=release.image_digest,
        region="eu-west-1",
    )
    assert found["imageDigest"] == release.image_digest


def test_register_page_refuses_bad_zip_and_accepts_a_good_one(
    client_for, operator_user, viewer_user, outsider_user, seeded
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    assert client_for(outsider_user).get("/releases/new/").status_code == 404
    assert client_for(viewer_user).get("/releases/new/").status_code == 403
    c = client_for(operator_user)
    form = {
        "version": "2026.12.9",
        "artifact": "zip",
        "runtime": "python3.12",
        "handler": "app.handler",
        "architecture": "x86_64",
        "memory_mb": 256,
        "timeout_s": 30,
    }
    before = artifact_keys()
    bad = c.post("/releases/new/", {**form, "zip_file": SimpleUploadedFile("a.zip", b"nope")})
    assert bad.status_code == 200 and b"not a zip archive" in bad.content
    assert not Release.objects.filter(version="2026.12.9").exists()
    assert artifact_keys() == before
    good = c.post(
        "/releases/new/",
        {
            **form,
            "zip_file": SimpleUploadedFile("a.zip", build_zip(app_files("2026.12.9"))),
            "migrations": [
                SimpleUploadedFile("0001_init.sql", b"CREATE TABLE t (id int);\n"),
                SimpleUploadedFile("0002_more.sql", b"ALTER TABLE t ADD COLUMN n int;\n"),
            ],
        },
    )
    assert good.status_code == 302 and good["Location"] == "/releases/2026.12.9/"
    release = Release.objects.get(version="2026.12.9")
    assert [m.name for m in release.migrations.all()] == ["0001_init.sql", "0002_more.sql"]


def test_zip_is_copied_to_another_region_once(seeded):
    from deployments.artifacts import ensure_artifact_in_region, regional_bucket

    release = release_register(zip_input("2026.12.4"))
    first = ensure_artifact_in_region(release, region="eu-west-1")
    again = ensure_artifact_in_region(release, region="eu-west-1")
    assert first["copied"] is True and again["copied"] is False
    body = s3.get_object_bytes(
        bucket=regional_bucket("eu-west-1"), key=release.zip_key, region="eu-west-1"
    )
    assert hashlib.sha256(body).hexdigest() == release.zip_sha256

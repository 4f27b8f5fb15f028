"""Copying an image between regions through ECR's layer API (in-process moto).

moto has no GetDownloadUrlForLayer, so the source region's client is stubbed for the two
calls a copy makes there (BatchGetImage with the manifest moto really stored, and the
download URLs), and the blobs are served by a local HTTP server. The target region is
real moto throughout: what it ends up holding is what the assertions read.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.stub import ANY, Stubber
from django.conf import settings

from deployments.models import ArtifactType, Release
from opsconsole.aws import ecr
from opsconsole.aws.clients import client
from opsconsole.aws.errors import AwsError, AwsNotFound

REPO = "team/app"
TARGET = "eu-west-1"


def _sha(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


class BlobServer:
    """Serves ``blobs[digest]`` at ``/<digest>``; ``status[digest]`` overrides the answer."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.status: dict[str, int] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                digest = self.path.lstrip("/")
                server.requests.append(digest)
                status = server.status.get(digest, 200 if digest in server.blobs else 404)
                body = server.blobs.get(digest, b"") if status == 200 else b"no"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def url(self, digest: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/{digest}"


@pytest.fixture
def blob_server() -> Iterator[BlobServer]:
    server = BlobServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
    thread.join()


@pytest.fixture
def repos(aws):
    ecr.create_repository(name=REPO, tags={"ManagedBy": "opsconsole"})
    ecr.create_repository(name=REPO, tags={"ManagedBy": "opsconsole"}, region=TARGET)


@pytest.fixture
def target_calls(aws) -> dict[str, int]:
    """Counts the target region's ECR API calls by operation name."""
    seen: dict[str, int] = {}

    def count(model, **kwargs):
        seen[model.name] = seen.get(model.name, 0) + 1

    client("ecr", TARGET).meta.events.register("before-call.ecr", count)
    return seen


@pytest.fixture
def source_stub(aws) -> Iterator[Stubber]:
    """The source region's client, stubbed once a test calls ``activate()`` (after the real
    push: a Stubber answers every call of its client)."""
    stubber = Stubber(client("ecr", settings.AWS_REGION))
    yield stubber
    stubber.deactivate()


def _push_source(*layers: bytes, name: str = "one") -> tuple[str, str, dict[str, bytes]]:
    """Push an image into the source region for real: its digest, manifest text and blobs."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "name": name}).encode()
    pushed = ecr.push_image(repository=REPO, tag=name, config_blob=config, layers=list(layers))
    manifest = ecr.get_image_manifest(repository=REPO, digest=pushed["digest"])
    return pushed["digest"], manifest, {_sha(blob): blob for blob in [config, *layers]}


def _stub_manifest(
    stubber: Stubber, *, digest: str, manifest: str, media_type: str = ecr.MANIFEST_MEDIA_TYPE
) -> None:
    stubber.add_response(
        "batch_get_image",
        {
            "images": [
                {
                    "registryId": "123456789012",
                    "repositoryName": REPO,
                    "imageId": {"imageDigest": digest},
                    "imageManifest": manifest,
                    "imageManifestMediaType": media_type,
                }
            ],
            "failures": [],
        },
        {"repositoryName": REPO, "imageIds": [{"imageDigest": digest}], "acceptedMediaTypes": ANY},
    )


def _stub_downloads(stubber: Stubber, server: BlobServer, digests: list[str]) -> None:
    for digest in digests:
        stubber.add_response(
            "get_download_url_for_layer",
            {"downloadUrl": server.url(digest), "layerDigest": digest},
            {"repositoryName": REPO, "layerDigest": digest},
        )


def _copy(digest: str, **kwargs) -> dict:
    return ecr.copy_image(
        repository=REPO,
        digest=digest,
        source_region=settings.AWS_REGION,
        target_region=TARGET,
        **kwargs,
    )


def _available_in_target(digests: list[str]) -> dict[str, int]:
    resp = client("ecr", TARGET).batch_check_layer_availability(
        repositoryName=REPO, layerDigests=digests
    )
    return {x["layerDigest"]: x["layerSize"] for x in resp["layers"]}


def test_copy_puts_the_same_image_in_the_target_then_does_nothing(
    repos, blob_server, source_stub, target_calls
):
    layers = [gzip.compress(b"base layer " * 500, mtime=0), b"plain tar layer"]
    digest, manifest, blobs = _push_source(*layers)
    blob_server.blobs.update(blobs)
    source_stub.activate()
    _stub_manifest(source_stub, digest=digest, manifest=manifest)
    _stub_downloads(source_stub, blob_server, list(blobs))

    first = _copy(digest, tag="1.0.0")

    source_stub.assert_no_pending_responses()
    assert first == {
        "digest": digest,
        "uploaded_layers": list(blobs),
        "skipped_layers": [],
        "manifest_put": True,
    }
    found = client("ecr", TARGET).describe_images(
        repositoryName=REPO, imageIds=[{"imageDigest": digest}]
    )["imageDetails"]
    assert [(x["imageDigest"], x["imageTags"]) for x in found] == [(digest, ["1.0.0"])]
    assert ecr.get_image_manifest(repository=REPO, digest=digest, region=TARGET) == manifest
    assert _available_in_target(list(blobs)) == {d: len(b) for d, b in blobs.items()}
    assert target_calls["CompleteLayerUpload"] == len(blobs)
    assert target_calls["PutImage"] == 1

    _stub_manifest(source_stub, digest=digest, manifest=manifest)
    again = _copy(digest, tag="1.0.0")

    source_stub.assert_no_pending_responses()  # and no download URL asked for
    assert again["uploaded_layers"] == [] and again["skipped_layers"] == list(blobs)
    assert again["manifest_put"] is False
    assert target_calls["InitiateLayerUpload"] == len(blobs)
    assert target_calls["PutImage"] == 1
    assert sorted(blob_server.requests) == sorted(blobs)  # each blob downloaded once


def test_a_large_blob_streams_through_in_several_parts(
    repos, blob_server, source_stub, target_calls, monkeypatch
):
    layer = bytes(range(256)) * 40  # 10,240 bytes
    digest, manifest, blobs = _push_source(layer, name="big")
    blob_server.blobs.update(blobs)
    source_stub.activate()
    _stub_manifest(source_stub, digest=digest, manifest=manifest)
    _stub_downloads(source_stub, blob_server, list(blobs))
    # Reads that do not line up with parts: the parts are regrouped from the stream.
    monkeypatch.setattr(ecr, "_DOWNLOAD_CHUNK", 1000)

    copied = _copy(digest, part_size=4096)

    assert copied["manifest_put"] is True
    assert target_calls["UploadLayerPart"] == 1 + 3  # config in one part, the layer in three
    assert _available_in_target([_sha(layer)]) == {_sha(layer): len(layer)}
    assert ecr.describe_image(repository=REPO, tag_or_digest=digest, region=TARGET)


def test_a_blob_with_wrong_bytes_is_refused_and_no_image_is_put(repos, blob_server, source_stub):
    layer = gzip.compress(b"the real layer", mtime=0)
    digest, manifest, blobs = _push_source(layer)
    blob_server.blobs.update(blobs)
    blob_server.blobs[_sha(layer)] = b"something else entirely"
    source_stub.activate()
    _stub_manifest(source_stub, digest=digest, manifest=manifest)
    _stub_downloads(source_stub, blob_server, list(blobs))

    with pytest.raises(AwsError) as err:
        _copy(digest, tag="1.0.0")

    assert _sha(layer) in str(err.value)
    assert err.value.permanent is True
    assert ecr.describe_image(repository=REPO, tag_or_digest=digest, region=TARGET) is None
    assert _sha(layer) not in _available_in_target([_sha(layer)])


def test_a_failed_download_is_transient_and_names_blob_and_region(repos, blob_server, source_stub):
    layer = gzip.compress(b"layer", mtime=0)
    digest, manifest, blobs = _push_source(layer)
    blob_server.blobs.update(blobs)
    blob_server.status[_sha(layer)] = 500
    source_stub.activate()
    _stub_manifest(source_stub, digest=digest, manifest=manifest)
    _stub_downloads(source_stub, blob_server, list(blobs))

    with pytest.raises(AwsError) as err:
        _copy(digest)

    assert not isinstance(err.value, AwsNotFound)
    assert err.value.permanent is False
    assert _sha(layer) in str(err.value) and settings.AWS_REGION in str(err.value)
    assert "500" in str(err.value)
    assert ecr.describe_image(repository=REPO, tag_or_digest=digest, region=TARGET) is None


@pytest.mark.parametrize("media_type", [ecr.MANIFEST_LIST_MEDIA_TYPE, ecr.OCI_INDEX_MEDIA_TYPE])
def test_a_multi_arch_image_is_refused(repos, source_stub, media_type):
    platform = {"architecture": "arm64", "os": "linux"}
    child = {"mediaType": ecr.MANIFEST_MEDIA_TYPE, "size": 1, "digest": _sha(b"x")}
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [{**child, "platform": platform}],
        }
    )
    digest = _sha(manifest.encode())
    source_stub.activate()
    _stub_manifest(source_stub, digest=digest, manifest=manifest, media_type=media_type)

    with pytest.raises(AwsError) as err:
        _copy(digest)

    assert "multi-arch" in str(err.value) and "not supported" in str(err.value)
    assert err.value.permanent is True
    assert ecr.describe_image(repository=REPO, tag_or_digest=digest, region=TARGET) is None


def test_a_manifest_that_is_not_its_digest_is_refused(repos, source_stub):
    digest, manifest, _ = _push_source(b"layer")
    source_stub.activate()
    _stub_manifest(source_stub, digest=digest, manifest=manifest + "\n")

    with pytest.raises(AwsError) as err:
        _copy(digest)

    assert digest in str(err.value) and err.value.permanent is True
    assert ecr.describe_image(repository=REPO, tag_or_digest=digest, region=TARGET) is None


def test_an_image_registered_by_digest_is_copied_to_another_region(
    aws, db, blob_server, source_stub
):
    from deployments.artifacts import ensure_artifact_in_region

    repo = ecr.create_repository(name=REPO, tags={"ManagedBy": "opsconsole"})
    digest, manifest, blobs = _push_source(gzip.compress(b"app layer", mtime=0))
    release = Release.objects.create(
        version="2026.12.7",
        artifact_type=ArtifactType.IMAGE,
        image_uri=f"{repo['repositoryUri']}:one",
        image_digest=digest,
    )
    blob_server.blobs.update(blobs)
    source_stub.activate()
    _stub_manifest(source_stub, digest=digest, manifest=manifest)
    _stub_downloads(source_stub, blob_server, list(blobs))

    first = ensure_artifact_in_region(release, region=TARGET)
    again = ensure_artifact_in_region(release, region=TARGET)

    assert first == {"image": f"{REPO}@{digest}", "pushed": True}
    assert again["pushed"] is False
    source_stub.assert_no_pending_responses()
    found = ecr.describe_image(repository=REPO, tag_or_digest=digest, region=TARGET)
    assert found["imageDigest"] == digest and found["imageTags"] == [release.version]
    assert ecr.get_image_manifest(repository=REPO, digest=digest, region=TARGET) == manifest

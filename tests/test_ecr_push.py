"""Pushing images through ECR's layer API (in-process moto)."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from opsconsole.aws import ecr
from opsconsole.aws.clients import client
from opsconsole.aws.errors import AwsError, AwsNotFound

REPO = "team/app"


def _sha(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _config(name: str) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "name": name}).encode()


@pytest.fixture
def repo(aws):
    return ecr.create_repository(name=REPO, tags={"ManagedBy": "opsconsole"})


@pytest.fixture
def calls(aws):
    """Counts ECR API calls by operation name."""
    seen: dict[str, int] = {}

    def count(model, **kwargs):
        seen[model.name] = seen.get(model.name, 0) + 1

    client("ecr").meta.events.register("before-call.ecr", count)
    return seen


def test_push_uploads_blobs_then_skips_them(repo, calls):
    config = _config("one")
    layer = gzip.compress(b"layer bytes " * 1000, mtime=0)

    first = ecr.push_image(repository=REPO, tag="1.0.0", config_blob=config, layers=[layer])

    assert first["uploaded_layers"] == [_sha(config), _sha(layer)]
    assert first["skipped_layers"] == []
    assert first["manifest_put"] is True
    assert first["uri"] == f"{repo['repositoryUri']}:1.0.0"
    assert calls["CompleteLayerUpload"] == 2
    assert calls["PutImage"] == 1

    second = ecr.push_image(repository=REPO, tag="1.0.0", config_blob=config, layers=[layer])

    assert second["digest"] == first["digest"]
    assert second["uploaded_layers"] == []
    assert second["skipped_layers"] == [_sha(config), _sha(layer)]
    assert second["manifest_put"] is False
    assert calls["CompleteLayerUpload"] == 2  # nothing uploaded again
    assert calls["PutImage"] == 1  # and no second PutImage (ECR would refuse it)


def test_manifest_and_digest_are_put(repo):
    config = _config("one")
    layers = [gzip.compress(b"base", mtime=0), b"plain tar layer from docker save"]

    pushed = ecr.push_image(repository=REPO, tag="1.0.0", config_blob=config, layers=layers)

    manifest_text = ecr.get_image_manifest(repository=REPO, digest=pushed["digest"])
    assert pushed["digest"] == _sha(manifest_text.encode("utf-8"))
    manifest = json.loads(manifest_text)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["config"] == {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": len(config),
        "digest": _sha(config),
    }
    assert [(x["mediaType"], x["size"], x["digest"]) for x in manifest["layers"]] == [
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", len(layers[0]), _sha(layers[0])),
        ("application/vnd.docker.image.rootfs.diff.tar", len(layers[1]), _sha(layers[1])),
    ]
    by_tag = ecr.describe_image(repository=REPO, tag_or_digest="1.0.0")
    by_digest = ecr.describe_image(repository=REPO, tag_or_digest=pushed["digest"])
    assert by_tag["imageDigest"] == by_digest["imageDigest"] == pushed["digest"]
    assert by_tag["imageTags"] == ["1.0.0"]
    # Every blob the manifest names is in the repository, with its size.
    resp = client("ecr").batch_check_layer_availability(
        repositoryName=REPO, layerDigests=[_sha(config), *(_sha(x) for x in layers)]
    )
    assert resp["failures"] == []
    assert sorted(x["layerSize"] for x in resp["layers"]) == sorted(
        [len(config), *(len(x) for x in layers)]
    )


def test_large_blob_goes_up_in_ordered_parts(repo, calls):
    layer = bytes(range(256)) * 40  # 10,240 bytes
    pushed = ecr.push_image(
        repository=REPO, tag="big", config_blob=_config("big"), layers=[layer], part_size=4096
    )

    assert calls["UploadLayerPart"] == 1 + 3  # config in one part, the layer in three
    assert _sha(layer) in pushed["uploaded_layers"]
    resp = client("ecr").batch_check_layer_availability(
        repositoryName=REPO, layerDigests=[_sha(layer)]
    )
    assert resp["layers"][0]["layerSize"] == len(layer)


def test_a_shared_layer_is_uploaded_once(repo):
    base = gzip.compress(b"shared base layer", mtime=0)
    ecr.push_image(repository=REPO, tag="1", config_blob=_config("1"), layers=[base])

    pushed = ecr.push_image(repository=REPO, tag="2", config_blob=_config("2"), layers=[base])

    assert pushed["uploaded_layers"] == [_sha(_config("2"))]
    assert pushed["skipped_layers"] == [_sha(base)]


def test_an_immutable_tag_does_not_move(repo):
    ecr.push_image(repository=REPO, tag="1.0.0", config_blob=_config("a"), layers=[b"a"])

    with pytest.raises(AwsError) as err:
        ecr.push_image(repository=REPO, tag="1.0.0", config_blob=_config("b"), layers=[b"b"])

    assert not isinstance(err.value, AwsNotFound)
    assert err.value.permanent


def test_missing_repository_is_not_found(aws):
    with pytest.raises(AwsNotFound):
        ecr.push_image(repository="nope", tag="1", config_blob=_config("x"), layers=[b"x"])
    with pytest.raises(AwsNotFound):
        ecr.describe_image(repository="nope", tag_or_digest="1")


def test_describe_image_of_unknown_tag_is_none(repo):
    assert ecr.describe_image(repository=REPO, tag_or_digest="never-pushed") is None

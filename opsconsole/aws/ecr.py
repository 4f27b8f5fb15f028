"""ECR: release image repositories, and pushing images through ECR's layer API.

There is no ``docker push`` here: images are pushed blob by blob with the ECR API calls
(``InitiateLayerUpload`` ... ``PutImage``), which work the same against AWS and moto and
need no Docker daemon or registry credentials.
"""

from __future__ import annotations

import hashlib
import json

from opsconsole.aws.clients import call, client, tag_list
from opsconsole.aws.errors import AwsError, AwsNotFound

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_MEDIA_TYPE_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
LAYER_MEDIA_TYPE_TAR = "application/vnd.docker.image.rootfs.diff.tar"

# BatchCheckLayerAvailability takes at most 100 digests per call.
_CHECK_BATCH = 100


def describe_repository(*, name: str, region: str | None = None) -> dict | None:
    try:
        resp = call(client("ecr", region).describe_repositories, repositoryNames=[name])
    except AwsNotFound:
        return None
    repos = resp.get("repositories", [])
    return repos[0] if repos else None


def create_repository(
    *,
    name: str,
    tags: dict[str, str],
    immutable_tags: bool = True,
    region: str | None = None,
) -> dict:
    """Create a repository that scans on push; release tags never move when immutable."""
    return call(
        client("ecr", region).create_repository,
        repositoryName=name,
        imageTagMutability="IMMUTABLE" if immutable_tags else "MUTABLE",
        imageScanningConfiguration={"scanOnPush": True},
        encryptionConfiguration={"encryptionType": "AES256"},
        tags=tag_list(tags),
    )["repository"]


def describe_image(
    *, repository: str, tag_or_digest: str, region: str | None = None
) -> dict | None:
    """The image's details (``imageDigest``, ``imageTags``, ...), or None if there is none.

    A missing repository is not "no image": it raises AwsNotFound.
    """
    if tag_or_digest.startswith("sha256:"):
        image_id = {"imageDigest": tag_or_digest}
    else:
        image_id = {"imageTag": tag_or_digest}
    try:
        resp = call(
            client("ecr", region).describe_images, repositoryName=repository, imageIds=[image_id]
        )
    except AwsNotFound as exc:
        if exc.code == "ImageNotFoundException":
            return None
        raise
    details = resp.get("imageDetails", [])
    return details[0] if details else None


def get_image_manifest(*, repository: str, digest: str, region: str | None = None) -> str:
    """The manifest exactly as stored: its sha256 is the image digest."""
    resp = call(
        client("ecr", region).batch_get_image,
        repositoryName=repository,
        imageIds=[{"imageDigest": digest}],
        acceptedMediaTypes=[MANIFEST_MEDIA_TYPE, "application/vnd.oci.image.manifest.v1+json"],
    )
    images = resp.get("images", [])
    if not images:
        reason = "; ".join(f.get("failureReason", "") for f in resp.get("failures", []))
        raise AwsNotFound(
            f"No image {digest} in {repository}: {reason}".rstrip(": "),
            code="ImageNotFoundException",
            operation="BatchGetImage",
        )
    return images[0]["imageManifest"]


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _layer_media_type(blob: bytes) -> str:
    # `docker save` archives hold plain tar layers; built images usually gzip them.
    return LAYER_MEDIA_TYPE_GZIP if blob[:2] == b"\x1f\x8b" else LAYER_MEDIA_TYPE_TAR


def build_manifest(*, config_blob: bytes, layers: list[bytes]) -> bytes:
    """The Docker v2 schema 2 manifest of an image, as the exact bytes that get pushed."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "size": len(config_blob),
            "digest": _digest(config_blob),
        },
        "layers": [
            {"mediaType": _layer_media_type(layer), "size": len(layer), "digest": _digest(layer)}
            for layer in layers
        ],
    }
    return json.dumps(manifest, indent=3).encode("utf-8")


def _available_blobs(ecr, *, repository: str, digests: list[str]) -> set[str]:
    available: set[str] = set()
    for start in range(0, len(digests), _CHECK_BATCH):
        resp = call(
            ecr.batch_check_layer_availability,
            repositoryName=repository,
            layerDigests=digests[start : start + _CHECK_BATCH],
        )
        available.update(
            layer["layerDigest"]
            for layer in resp.get("layers", [])
            if layer.get("layerAvailability") == "AVAILABLE"
        )
    return available


def _upload_blob(ecr, *, repository: str, blob: bytes, digest: str, part_size: int | None) -> None:
    upload = call(ecr.initiate_layer_upload, repositoryName=repository)
    upload_id = upload["uploadId"]
    # ECR says which part size it wants; parts go in order, last byte inclusive.
    size = part_size or upload.get("partSize") or 10 * 1024 * 1024
    for first in range(0, len(blob), size):
        part = blob[first : first + size]
        call(
            ecr.upload_layer_part,
            repositoryName=repository,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + len(part) - 1,
            layerPartBlob=part,
        )
    done = call(
        ecr.complete_layer_upload,
        repositoryName=repository,
        uploadId=upload_id,
        layerDigests=[digest],
    )
    # AWS checks the digest we name against the bytes; moto computes its own and ignores
    # ours. Either way a mismatch means the manifest would point at a blob that is not there.
    if done.get("layerDigest") != digest:
        raise AwsError(
            f"ECR stored blob {done.get('layerDigest')} for {digest}",
            code="InvalidLayerException",
            operation="CompleteLayerUpload",
            permanent=True,
        )


def push_image(
    *,
    repository: str,
    tag: str,
    config_blob: bytes,
    layers: list[bytes],
    part_size: int | None = None,
    region: str | None = None,
) -> dict:
    """Push an image (config blob + layer blobs, in order) to ``repository`` as ``tag``.

    Blobs the repository already holds are not uploaded again, and when ``tag`` already
    names this exact manifest nothing is put. The image digest is the sha256 of the
    manifest bytes, passed to PutImage so that ECR (and moto) record that very digest.

    Returns ``{"digest", "uri" (repositoryUri:tag), "uploaded_layers", "skipped_layers"
    (blob digests, config included), "manifest_put"}``. A missing repository raises
    AwsNotFound; a tag of an immutable repository that names another image raises AwsError.
    """
    ecr = client("ecr", region)
    repo = call(ecr.describe_repositories, repositoryNames=[repository])["repositories"][0]

    blobs: dict[str, bytes] = {}
    for blob in [config_blob, *layers]:
        blobs.setdefault(_digest(blob), blob)
    available = _available_blobs(ecr, repository=repository, digests=list(blobs))
    uploaded, skipped = [], []
    for digest, blob in blobs.items():
        if digest in available:
            skipped.append(digest)
            continue
        _upload_blob(ecr, repository=repository, blob=blob, digest=digest, part_size=part_size)
        uploaded.append(digest)

    manifest = build_manifest(config_blob=config_blob, layers=layers)
    digest = _digest(manifest)
    current = describe_image(repository=repository, tag_or_digest=tag, region=region)
    manifest_put = current is None or current.get("imageDigest") != digest
    if manifest_put:
        call(
            ecr.put_image,
            repositoryName=repository,
            imageManifest=manifest.decode("utf-8"),
            imageManifestMediaType=MANIFEST_MEDIA_TYPE,
            imageTag=tag,
            imageDigest=digest,
        )
    return {
        "digest": digest,
        "uri": f"{repo['repositoryUri']}:{tag}",
        "uploaded_layers": uploaded,
        "skipped_layers": skipped,
        "manifest_put": manifest_put,
    }

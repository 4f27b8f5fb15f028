"""ECR: release image repositories, and pushing images through ECR's layer API.

There is no ``docker push`` here: images are pushed blob by blob with the ECR API calls
(``InitiateLayerUpload`` ... ``PutImage``), which work the same against AWS and moto and
need no Docker daemon or registry credentials. Copying an image to another region reads
its blobs through ``GetDownloadUrlForLayer`` and pushes them the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import urllib.request
from collections.abc import Iterable, Iterator

from opsconsole.aws.clients import aws_account, call, client, tag_list
from opsconsole.aws.errors import AwsError, AwsNotFound

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_MEDIA_TYPE_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
LAYER_MEDIA_TYPE_TAR = "application/vnd.docker.image.rootfs.diff.tar"
OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_LIST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
_IMAGE_MEDIA_TYPES = (MANIFEST_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE)
_LIST_MEDIA_TYPES = (MANIFEST_LIST_MEDIA_TYPE, OCI_INDEX_MEDIA_TYPE)

# BatchCheckLayerAvailability takes at most 100 digests per call.
_CHECK_BATCH = 100
# What ECR asks for when InitiateLayerUpload does not say.
_DEFAULT_PART_SIZE = 10 * 1024 * 1024
# Read size of a blob download: small enough that a layer never sits in memory whole.
_DOWNLOAD_CHUNK = 1024 * 1024
_DOWNLOAD_TIMEOUT_S = 60


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


def _get_image(
    *, repository: str, digest: str, region: str | None, accepted: Iterable[str]
) -> dict:
    resp = call(
        client("ecr", region).batch_get_image,
        repositoryName=repository,
        imageIds=[{"imageDigest": digest}],
        acceptedMediaTypes=list(accepted),
    )
    images = resp.get("images", [])
    if not images:
        reason = "; ".join(f.get("failureReason", "") for f in resp.get("failures", []))
        raise AwsNotFound(
            f"No image {digest} in {repository}: {reason}".rstrip(": "),
            code="ImageNotFoundException",
            operation="BatchGetImage",
        )
    return images[0]


def get_image_manifest(*, repository: str, digest: str, region: str | None = None) -> str:
    """The manifest exactly as stored: its sha256 is the image digest."""
    image = _get_image(
        repository=repository, digest=digest, region=region, accepted=_IMAGE_MEDIA_TYPES
    )
    return image["imageManifest"]


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


def _parts(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup chunks of any size into parts of ``size`` bytes (the last one shorter)."""
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)


def _upload_blob(
    ecr, *, repository: str, chunks: Iterable[bytes], digest: str, part_size: int | None
) -> None:
    """Upload one blob from ``chunks`` (consumed once, in order) and check it is ``digest``."""
    upload = call(ecr.initiate_layer_upload, repositoryName=repository)
    upload_id = upload["uploadId"]
    # ECR says which part size it wants; parts go in order, last byte inclusive.
    size = part_size or upload.get("partSize") or _DEFAULT_PART_SIZE
    sha = hashlib.sha256()
    first = 0
    for part in _parts(chunks, size):
        sha.update(part)
        call(
            ecr.upload_layer_part,
            repositoryName=repository,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + len(part) - 1,
            layerPartBlob=part,
        )
        first += len(part)
    # Checked before completing, so bytes that are not the blob are never committed under
    # any digest; ECR expires the abandoned upload.
    actual = "sha256:" + sha.hexdigest()
    if actual != digest:
        raise AwsError(
            f"The bytes read for blob {digest} hash to {actual}",
            code="InvalidLayerException",
            permanent=True,
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
        _upload_blob(ecr, repository=repository, chunks=[blob], digest=digest, part_size=part_size)
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


def _image_blobs(
    manifest_text: str, *, digest: str, reported_media_type: str
) -> tuple[str, list[str]]:
    """The manifest's media type and the blobs it names (config first), once it is checked.

    Only single-image manifests can be copied blob by blob: a manifest list or OCI index
    names other manifests, each with its own blobs, which this does not walk.
    """
    actual = _digest(manifest_text.encode("utf-8"))
    if actual != digest:
        raise AwsError(
            f"The manifest ECR returned for {digest} hashes to {actual}; not copying it",
            code="ImageDigestMismatch",
            permanent=True,
        )
    try:
        manifest = json.loads(manifest_text)
    except ValueError as exc:
        raise AwsError(
            f"The manifest of {digest} is not JSON: {exc}", code="InvalidManifest", permanent=True
        ) from None
    media_type = manifest.get("mediaType") or reported_media_type
    if media_type in _LIST_MEDIA_TYPES or "manifests" in manifest:
        raise AwsError(
            f"Image {digest} is a manifest list / OCI index (a multi-arch image): copying "
            "multi-arch images to another region is not supported; register the digest of "
            "one platform's image instead",
            code="UnsupportedImageType",
            permanent=True,
        )
    if media_type not in _IMAGE_MEDIA_TYPES:
        raise AwsError(
            f"Image {digest} has manifest type {media_type or 'unknown'}; only Docker v2 "
            "schema 2 and OCI image manifests can be copied",
            code="UnsupportedImageType",
            permanent=True,
        )
    try:
        blobs = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    except (KeyError, TypeError) as exc:
        raise AwsError(
            f"The manifest of {digest} names no config or layers: {exc}",
            code="InvalidManifest",
            permanent=True,
        ) from None
    # An image may repeat a layer; it is one blob to copy.
    return media_type, list(dict.fromkeys(blobs))


def _download(url: str, *, digest: str, region: str) -> Iterator[bytes]:
    """Stream a blob from its presigned URL. Failures are worth a retry: the URL is fresh
    each time and the bytes are checked against the digest anyway.

    The URL carries a signature, so it stays out of error messages.
    """
    where = f"blob {digest} from ECR in {region}"
    received = 0
    try:
        # A presigned ECR URL: https on AWS, but any scheme urllib opens will do.
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as resp:  # noqa: S310
            expected = resp.headers.get("Content-Length")
            while chunk := resp.read(_DOWNLOAD_CHUNK):
                received += len(chunk)
                yield chunk
    except (OSError, http.client.HTTPException) as exc:
        raise AwsError(
            f"Downloading {where} failed: {exc}", code="DownloadFailed", permanent=False
        ) from exc
    # With a read size, http.client returns b"" on an early close instead of raising.
    if expected is not None and received != int(expected):
        raise AwsError(
            f"Downloading {where} ended after {received} of {expected} bytes",
            code="DownloadFailed",
            permanent=False,
        )


def _source(source_is_console: bool):
    """Where the source side's calls run: the console's own account when the target is a
    tenant's account (a cell), else the account the caller is in."""
    return aws_account(None) if source_is_console else contextlib.nullcontext()


def copy_image(
    *,
    repository: str,
    digest: str,
    source_region: str,
    target_region: str,
    tag: str | None = None,
    part_size: int | None = None,
    source_is_console: bool = False,
) -> dict:
    """Copy image ``digest`` of ``repository`` from one region's repository to another's
    (``source_is_console``: from the console's own account into the current one).

    The manifest is put exactly as stored in the source, so the image keeps its digest;
    blobs the target already holds are not copied again, and nothing is put when the target
    already has the image (with ``tag``, when one is given). Each missing blob is streamed
    from the source's presigned download URL into the target's layer upload, part by part.

    Returns ``{"digest", "uploaded_layers", "skipped_layers" (blob digests, config
    included), "manifest_put"}``. A repository or image missing in the source, or a missing
    target repository, raises AwsNotFound; manifest lists and OCI indexes (multi-arch
    images) are refused with a permanent AwsError; a failed download is a transient one.
    """
    with _source(source_is_console):
        image = _get_image(
            repository=repository,
            digest=digest,
            region=source_region,
            # Asked for too, so a multi-arch image is refused by name rather than "missing".
            accepted=(*_IMAGE_MEDIA_TYPES, *_LIST_MEDIA_TYPES),
        )
    manifest_text = image["imageManifest"]
    media_type, blobs = _image_blobs(
        manifest_text, digest=digest, reported_media_type=image.get("imageManifestMediaType", "")
    )
    target = client("ecr", target_region)
    available = _available_blobs(target, repository=repository, digests=blobs)
    uploaded, skipped = [], []
    for blob in blobs:
        if blob in available:
            skipped.append(blob)
            continue
        with _source(source_is_console):
            resp = call(
                client("ecr", source_region).get_download_url_for_layer,
                repositoryName=repository,
                layerDigest=blob,
            )
        chunks = _download(resp["downloadUrl"], digest=blob, region=source_region)
        _upload_blob(target, repository=repository, chunks=chunks, digest=blob, part_size=part_size)
        uploaded.append(blob)

    current = describe_image(repository=repository, tag_or_digest=digest, region=target_region)
    manifest_put = current is None or (tag is not None and tag not in current.get("imageTags", []))
    if manifest_put:
        call(
            target.put_image,
            repositoryName=repository,
            imageManifest=manifest_text,
            imageManifestMediaType=media_type,
            imageDigest=digest,
            **({"imageTag": tag} if tag else {}),
        )
    return {
        "digest": digest,
        "uploaded_layers": uploaded,
        "skipped_layers": skipped,
        "manifest_put": manifest_put,
    }

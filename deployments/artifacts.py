"""Release artifacts: reading image archives, and making an artifact present in a region.

An image archive is what ``docker save`` writes (``manifest.json`` naming the config and
layer files) or an OCI image layout (``index.json`` -> manifest blob -> config and layer
blobs), as a tar. Either way we get the config blob and the layer blobs in order, which
``ecr.push_image`` pushes through ECR's layer API.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass

from django.conf import settings

from deployments.models import ArtifactType, Release
from opsconsole.aws import ecr, s3
from opsconsole.aws.clients import aws_account, current_account
from opsconsole.aws.errors import AwsNotFound


class ArtifactError(ValueError):
    """The uploaded artifact cannot be used; the message says why, for the person."""


@dataclass(frozen=True)
class ImageArchive:
    config_blob: bytes
    layers: list[bytes]


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        member = tar.getmember(name.lstrip("./") if name.startswith("./") else name)
    except KeyError:
        raise ArtifactError(f"The archive names {name} but does not contain it.") from None
    handle = tar.extractfile(member)
    if handle is None:
        raise ArtifactError(f"{name} in the archive is not a regular file.")
    return handle.read()


def read_image_archive(data: bytes) -> ImageArchive:
    """Config and layers of a ``docker save`` tar or an OCI layout tar (one image)."""
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")  # noqa: SIM115 - closed below
    except tarfile.TarError as exc:
        raise ArtifactError(f"Not a tar archive: {exc}") from None
    with tar:
        names = set(tar.getnames())
        if "manifest.json" in names:
            try:
                manifest = json.loads(_member(tar, "manifest.json"))
                entry = manifest[0]
                config_name, layer_names = entry["Config"], entry["Layers"]
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise ArtifactError(f"manifest.json is not a docker save manifest: {exc}") from None
            if len(manifest) != 1:
                raise ArtifactError("The archive holds several images; save exactly one.")
            return ImageArchive(
                config_blob=_member(tar, config_name),
                layers=[_member(tar, name) for name in layer_names],
            )
        if "index.json" in names:
            try:
                index = json.loads(_member(tar, "index.json"))
                digest = index["manifests"][0]["digest"]
                manifest = json.loads(_member(tar, _blob_path(digest)))
                config_digest = manifest["config"]["digest"]
                layer_digests = [layer["digest"] for layer in manifest["layers"]]
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise ArtifactError(f"index.json is not an OCI image layout: {exc}") from None
            return ImageArchive(
                config_blob=_member(tar, _blob_path(config_digest)),
                layers=[_member(tar, _blob_path(d)) for d in layer_digests],
            )
    raise ArtifactError(
        "The archive has no manifest.json (docker save) or index.json (OCI layout)."
    )


def _blob_path(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def archive_key(digest: str) -> str:
    """Where the artifacts bucket keeps an uploaded image archive (for other regions)."""
    return f"releases/images/{digest.replace(':', '-')}.tar"


def release_repository() -> str:
    return settings.BASELINE["release_repository"]


def regional_bucket(region: str) -> str:
    return f"{settings.BASELINE['artifact_bucket']}-{region}"


def regional_image_uri(uri: str, region: str) -> str:
    host, _, rest = uri.partition("/")
    return f"{host.replace(f'.ecr.{settings.AWS_REGION}.', f'.ecr.{region}.')}/{rest}"


def _cell_account() -> str:
    """The account id of the cell the caller works in ("" for the console's own)."""
    role = current_account()
    return role.account_id if role else ""


def zip_bucket_for(release: Release, region: str) -> str:
    """Where a function in ``region`` of the current account reads the release's zip.

    Lambda reads code only from a bucket in its own region; a cell's copy lives in a
    bucket of its own account (S3 names are global, so the account id is in the name)."""
    account = _cell_account()
    if account:
        return f"{settings.BASELINE['artifact_bucket']}-{account}-{region}"
    return release.zip_bucket if region == settings.AWS_REGION else regional_bucket(region)


def image_uri_for(uri: str, region: str) -> str:
    """The release's image in the registry of ``region`` in the current account."""
    located = regional_image_uri(uri, region)
    account = _cell_account()
    if not account:
        return located
    host, _, rest = located.partition("/")
    return f"{account}{host[host.index('.') :]}/{rest}"


def _repository_of(release: Release) -> str:
    host_and_repo = release.image_uri.split("@")[0]
    repo = host_and_repo.partition("/")[2]
    return repo.rsplit(":", 1)[0] if ":" in repo else repo


def ensure_artifact_in_region(release: Release, *, region: str) -> dict:
    """Make the release's artifact present where the tenant's function lives.

    In the console's own account and region: check it is there. Elsewhere (another region,
    or a cell's account, whose credentials the caller runs with): copy the zip into that
    region's bucket, or put the image into that region's repository, pushed from the
    archive kept at registration or, for an image registered by tag or digest (no
    archive), copied blob by blob from the console's repository under the same digest;
    skipped when already there. What is read from the console's bucket or repository is
    read with the console's own credentials.
    """
    cell = bool(_cell_account())
    home = region == settings.AWS_REGION and not cell
    if release.artifact_type == ArtifactType.ZIP:
        bucket = zip_bucket_for(release, region)
        if s3.head_object(bucket=bucket, key=release.zip_key, region=region):
            return {"zip": f"s3://{bucket}/{release.zip_key}", "copied": False}
        if home:
            raise RuntimeError(f"s3://{bucket}/{release.zip_key} is missing.")
        if not s3.bucket_exists(bucket=bucket, region=region):
            s3.create_bucket(bucket=bucket, tags={"ManagedBy": "opsconsole"}, region=region)
        with aws_account(None):
            body = s3.get_object_bytes(bucket=release.zip_bucket, key=release.zip_key)
        s3.put_object(bucket=bucket, key=release.zip_key, body=body, region=region)
        return {"zip": f"s3://{bucket}/{release.zip_key}", "copied": True}

    repository = _repository_of(release)
    try:
        present = ecr.describe_image(
            repository=repository, tag_or_digest=release.image_digest, region=region
        )
    except AwsNotFound:
        present = None
        if not home:
            ecr.create_repository(name=repository, tags={"ManagedBy": "opsconsole"}, region=region)
    if present:
        return {"image": f"{repository}@{release.image_digest}", "pushed": False}
    # Not there yet: push it from the archive kept at registration (the release_push job
    # does this for the console's region; a deploy does it for any region it needs).
    key = archive_key(release.image_digest)
    with aws_account(None):
        archived = s3.head_object(bucket=settings.BASELINE["artifact_bucket"], key=key)
    if not archived:
        if home:
            raise RuntimeError(f"Image {repository}@{release.image_digest} is missing from ECR.")
        # Registered by tag or digest: the console's own repository is the only copy.
        ecr.copy_image(
            repository=repository,
            digest=release.image_digest,
            source_region=settings.AWS_REGION,
            target_region=region,
            tag=release.version,
            source_is_console=cell,
        )
        return {"image": f"{repository}@{release.image_digest}", "pushed": True}
    with aws_account(None):
        blob = s3.get_object_bytes(bucket=settings.BASELINE["artifact_bucket"], key=key)
    archive = read_image_archive(blob)
    pushed = ecr.push_image(
        repository=repository,
        tag=release.version,
        config_blob=archive.config_blob,
        layers=archive.layers,
        region=region,
    )
    if pushed["digest"] != release.image_digest:
        raise RuntimeError(
            f"Pushed {pushed['digest']} to {region}, the release is {release.image_digest}."
        )
    return {"image": f"{repository}@{release.image_digest}", "pushed": True}

"""S3: the artifacts bucket (release zips, database dumps)."""

from __future__ import annotations

import base64
import hashlib
from typing import BinaryIO

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError

from opsconsole.aws.clients import aws_errors, call, client, tag_list
from opsconsole.aws.errors import AwsError, AwsNotFound


def bucket_exists(*, bucket: str, region: str | None = None) -> bool:
    try:
        call(client("s3", region).head_bucket, Bucket=bucket)
    except AwsNotFound:
        return False
    except AwsError as exc:
        if exc.code in {"404", "NoSuchBucket", "NotFound"}:
            return False
        raise
    return True


def create_bucket(*, bucket: str, tags: dict[str, str], region: str | None = None) -> None:
    """Create a private bucket in ``region``: public access blocked, objects owned by us.

    Tags are set separately: CreateBucket only takes them in newer API versions.
    """
    s3 = client("s3", region)
    kwargs: dict = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
    location = s3.meta.region_name
    if location != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": location}
    call(s3.create_bucket, **kwargs)
    call(
        s3.put_public_access_block,
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    call(s3.put_bucket_tagging, Bucket=bucket, Tagging={"TagSet": tag_list(tags)})


def head_object(*, bucket: str, key: str, region: str | None = None) -> dict | None:
    try:
        return call(client("s3", region).head_object, Bucket=bucket, Key=key)
    except AwsNotFound:
        return None


def put_object(
    *,
    bucket: str,
    key: str,
    body: bytes,
    content_type: str = "application/octet-stream",
    metadata: dict[str, str] | None = None,
    region: str | None = None,
) -> dict:
    """Upload ``body`` with its SHA-256 checksum, so S3 rejects a corrupted upload."""
    checksum = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
    resp = call(
        client("s3", region).put_object,
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType=content_type,
        Metadata=metadata or {},
        ChecksumSHA256=checksum,
    )
    return {"ETag": resp.get("ETag", ""), "VersionId": resp.get("VersionId", "")}


def get_object_bytes(*, bucket: str, key: str, region: str | None = None) -> bytes:
    resp = call(client("s3", region).get_object, Bucket=bucket, Key=key)
    return resp["Body"].read()


def upload_fileobj(
    *,
    bucket: str,
    key: str,
    fileobj: BinaryIO,
    content_type: str = "application/octet-stream",
    metadata: dict[str, str] | None = None,
    region: str | None = None,
) -> dict:
    """Upload a (possibly large) seekable file, in parts when it is big, each part checked
    with SHA-256 by S3. Returns the object's ``ContentLength`` and ``ETag``."""
    s3 = client("s3", region)
    with aws_errors():
        try:
            s3.upload_fileobj(
                fileobj,
                bucket,
                key,
                ExtraArgs={
                    "ContentType": content_type,
                    "Metadata": metadata or {},
                    "ChecksumAlgorithm": "SHA256",
                },
            )
        except S3UploadFailedError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ClientError):
                raise cause from exc
            raise AwsError(str(exc), code="S3UploadFailed", permanent=False) from exc
    head = head_object(bucket=bucket, key=key, region=region) or {}
    return {"ContentLength": head.get("ContentLength", 0), "ETag": head.get("ETag", "")}


def download_fileobj(
    *, bucket: str, key: str, fileobj: BinaryIO, region: str | None = None
) -> None:
    """Download a (possibly large) object into ``fileobj``, in parts, without holding it
    in memory."""
    s3 = client("s3", region)
    with aws_errors():
        s3.download_fileobj(bucket, key, fileobj)


def read_range(*, bucket: str, key: str, length: int, region: str | None = None) -> bytes:
    """The object's first ``length`` bytes (one ranged GET: what a format check needs)."""
    resp = call(
        client("s3", region).get_object, Bucket=bucket, Key=key, Range=f"bytes=0-{length - 1}"
    )
    return resp["Body"].read()

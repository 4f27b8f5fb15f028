"""S3: the artifacts bucket (release zips, database dumps)."""

from __future__ import annotations

from opsconsole.aws.clients import call, client
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

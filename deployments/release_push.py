"""Job ``release_push``: a worker pushes an uploaded image archive into the release
repository through ECR's layer API (missing blobs only, then the manifest with its
sha256 digest). Registration only validated and kept the archive."""

from __future__ import annotations

from django.conf import settings

from deployments.artifacts import ensure_artifact_in_region
from deployments.models import Release
from opsconsole.jobs.registry import register_job_kind


def step_push(job, step) -> dict:
    release = Release.objects.get(version=job.subject_id)
    return ensure_artifact_in_region(release, region=settings.AWS_REGION)


register_job_kind(
    "release_push",
    label="Push image to ECR",
    steps=[("push", "Push the image archive through ECR's layer API", step_push)],
)

"""Container image functions: images pushed through ECR's layer API run when their
entrypoint is one the sandbox can honour; any other answers a clear error."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from tests.sandbox.test_lambda_common import Aws, unique

pytestmark = pytest.mark.integration

APP = """\
import os

def handler(event, context):
    return {
        "event": event,
        "files": sorted(os.listdir(".")),
        "root": os.environ["LAMBDA_TASK_ROOT"],
        "stage": os.environ.get("STAGE"),
    }
"""

BOOTSTRAP = """\
#!/bin/sh
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS="$(mktemp)"
  EVENT=$(curl -sS -D "$HEADERS" "$API/invocation/next")
  ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  BODY=$(printf '{"handler": "%s", "event": %s}' "$_HANDLER" "$EVENT")
  curl -sS -o /dev/null "$API/invocation/$ID/response" -d "$BODY"
done
"""


@pytest.fixture(scope="module")
def aws(local_aws_server) -> Aws:
    return Aws(local_aws_server)


def layer(files: dict[str, tuple[bytes, int]], *, gzipped: bool = True) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    raw = out.getvalue()
    return gzip.compress(raw, mtime=0) if gzipped else raw


def digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def push(aws: Aws, config: dict, layers: list[bytes], *, upload: bool = True) -> str:
    """The console's push: each blob through the layer API, then the manifest. Returns
    the image URI pinned to its digest."""
    ecr = aws.client("ecr")
    name = unique("images")
    uri = ecr.create_repository(repositoryName=name)["repository"]["repositoryUri"]
    config_blob = json.dumps({"architecture": "amd64", "os": "linux", "config": config}).encode()
    for blob in [config_blob, *layers] if upload else []:
        upload_id = ecr.initiate_layer_upload(repositoryName=name)["uploadId"]
        ecr.upload_layer_part(
            repositoryName=name,
            uploadId=upload_id,
            partFirstByte=0,
            partLastByte=len(blob) - 1,
            layerPartBlob=blob,
        )
        ecr.complete_layer_upload(
            repositoryName=name, uploadId=upload_id, layerDigests=[digest(blob)]
        )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config_blob),
                "digest": digest(config_blob),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(blob),
                    "digest": digest(blob),
                }
                for blob in layers
            ],
        }
    )
    ecr.put_image(
        repositoryName=name,
        imageManifest=manifest,
        imageTag="v1",
        imageDigest=digest(manifest.encode()),
    )
    return f"{uri}@{digest(manifest.encode())}"


def image_function(aws: Aws, uri: str) -> str:
    name = unique("image-fn")
    aws.lam.create_function(
        FunctionName=name, Role=aws.role, PackageType="Image", Code={"ImageUri": uri}
    )
    return name


def test_python_base_image_shape_runs_its_handler(aws):
    base = layer({"var/task/app.py": (APP.encode(), 0o644), "var/task/old.txt": (b"x", 0o644)})
    patch = layer({"var/task/.wh.old.txt": (b"", 0o644), "var/task/new.txt": (b"y", 0o644)})
    uri = push(
        aws,
        {
            "Entrypoint": ["/lambda-entrypoint.sh"],
            "Cmd": ["app.handler"],
            "WorkingDir": "/var/task",
            "Env": ["PATH=/var/lang/bin:/usr/bin", "STAGE=image"],
        },
        [base, patch],
    )
    name = image_function(aws, uri)
    response, body = aws.invoke(name, {"n": 1})
    assert "FunctionError" not in response, body
    assert body["event"] == {"n": 1}
    assert body["files"] == ["app.py", "new.txt"]  # the whiteout removed old.txt
    assert body["root"].endswith("/var/task")
    assert body["stage"] == "image"
    assert any("image handler app.handler runs on Python" in m for m in aws.log_messages(name))


def test_provided_base_image_shape_runs_its_bootstrap(aws):
    files = {
        "var/runtime/bootstrap": (BOOTSTRAP.encode(), 0o755),
        "var/task/function.sh": (b"", 0o644),
    }
    uri = push(
        aws, {"Entrypoint": ["/lambda-entrypoint.sh"], "Cmd": ["function.handler"]}, [layer(files)]
    )
    response, body = aws.invoke(image_function(aws, uri), {"n": 2})
    assert "FunctionError" not in response, body
    assert body == {"handler": "function.handler", "event": {"n": 2}}


def test_other_entrypoints_are_refused_with_the_reason(aws):
    uri = push(aws, {"Entrypoint": ["/usr/local/bin/node", "index.js"]}, [layer({})])
    response, body = aws.invoke(image_function(aws, uri))
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.UnsupportedImage"
    assert body["errorMessage"].startswith(f"The sandbox cannot run image {uri}: ")
    assert "/usr/local/bin/node" in body["errorMessage"]


def test_an_image_whose_blobs_never_reached_this_server_is_refused(aws):
    uri = push(
        aws, {"Cmd": ["app.handler"]}, [layer({"var/task/app.py": (b"", 0o644)})], upload=False
    )
    response, body = aws.invoke(image_function(aws, uri))
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.UnsupportedImage"
    assert "moto keeps no layer bytes" in body["errorMessage"]

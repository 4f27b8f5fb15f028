"""Tenants onboarded on the local AWS with real code get the HTTP API their release
declares, and it behaves as API Gateway would: a plain payload-1.0 handler on the named
stage "production" and a Mangum (ASGI) app on ``$default`` each answer their health route
through the tenant's URL; the API answers CORS preflights itself; a stage that does not
exist is 404; every request leaves a JSON line in the stage's access log group; a
stage's throttling answers 429 once its bucket is empty."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from pathlib import Path

import mangum
import pytest
import requests
import typing_extensions
from django.conf import settings

from deployments.models import ArtifactType, Release
from opsconsole.aws.clients import client
from opsconsole.jobs.models import JobStatus
from tests.tenants.conftest import drop_tenant_databases, make_tenant, run_job

pytestmark = pytest.mark.integration

ORIGIN = "https://app.example.com"
# Each run its own slugs and releases (the local AWS and PostgreSQL outlive a run).
RUN = uuid.uuid4().hex[:4]

# Written for payload format 1.0 and nothing else: a 2.0 event has no httpMethod or path.
HANDLER_V1 = """
import json

def handler(event, context):
    stage = event["requestContext"]["stage"]
    path = event["path"]
    if stage != "$default" and path.startswith("/" + stage + "/"):
        path = path[len(stage) + 1:]
    found = event["httpMethod"] == "GET" and path == "/healthz"
    return {
        "statusCode": 200 if found else 404,
        "headers": {"content-type": "application/json", "access-control-allow-origin": "*"},
        "multiValueHeaders": {},
        "body": json.dumps({"format": event["version"], "stage": stage, "path": event["path"]}),
        "isBase64Encoded": False,
    }
"""

# A FastAPI-style ASGI app behind Mangum, as teams ship it; Mangum reads format 2.0.
HANDLER_V2 = """
import json
from mangum import Mangum

async def app(scope, receive, send):
    found = scope["method"] == "GET" and scope["path"] == "/healthz"
    await send({"type": "http.response.start", "status": 200 if found else 404,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps({"path": scope["path"]}).encode()})

handler = Mangum(app, lifespan="off")
"""


@pytest.fixture
def baseline(live_aws, db):
    from opsconsole.sandbox.seed import sandbox_seed

    drop_tenant_databases(f"tenant_ha{RUN}")
    yield sandbox_seed()
    drop_tenant_databases(f"tenant_ha{RUN}")


def zip_of(files: dict[str, str], packages: tuple[Path, ...] = ()) -> bytes:
    """A function zip: ``files`` and whole packages (or modules) from site-packages."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
        for package in packages:
            if package.is_file():
                archive.write(package, package.name)
                continue
            for path in package.rglob("*.py"):
                archive.write(path, str(Path(package.name) / path.relative_to(package)))
    return out.getvalue()


def register(version: str, source: str, api: dict, packages=()) -> Release:
    package = zip_of({"app.py": source}, packages)
    digest = hashlib.sha256(package).hexdigest()
    key = f"releases/sha256/{digest}.zip"
    bucket = settings.BASELINE["artifact_bucket"]
    client("s3").put_object(Bucket=bucket, Key=key, Body=package)
    return Release.objects.create(
        version=version,
        artifact_type=ArtifactType.ZIP,
        zip_bucket=bucket,
        zip_key=key,
        zip_sha256=digest,
        runtime="python3.12",
        handler="app.handler",
        timeout_s=10,
        app_settings={"api": api},
    )


def onboard(name: str, version: str):
    tenant = make_tenant(f"ha{RUN}-{name}", desired_release=version)
    job = run_job("tenant_provision", tenant, max_rounds=40)
    assert job.status == JobStatus.SUCCEEDED, [(s.name, s.error) for s in job.steps.all()]
    tenant.refresh_from_db()
    return tenant


def call(url: str, method: str = "GET", **headers: str) -> tuple[int, dict, bytes]:
    response = requests.request(method, url, headers=headers, timeout=60)
    return (
        response.status_code,
        {k.lower(): v for k, v in response.headers.items()},
        (response.content),
    )


def test_a_1_0_app_on_a_named_stage_with_cors_and_access_logs(baseline):
    register(
        "ha-live-v1",
        HANDLER_V1,
        {
            "payload_format": "1.0",
            "stage": "production",
            "cors": {"allow_origins": [ORIGIN], "allow_methods": ["GET", "POST"]},
            "access_logs": True,
        },
    )
    tenant = onboard("one", "ha-live-v1")
    assert tenant.endpoint_url.endswith("/production")

    status, headers, body = call(tenant.endpoint_url + "/healthz")
    assert status == 200, body
    # The function saw format 1.0 and the stage, still in the path as API Gateway leaves it.
    assert json.loads(body) == {
        "format": "1.0",
        "stage": "production",
        "path": "/production/healthz",
    }
    # No Origin: no CORS headers, and the function's own are dropped.
    assert "access-control-allow-origin" not in headers
    request_id = headers["apigw-requestid"]

    # The default endpoint without the stage, or another stage: no such stage.
    base = tenant.endpoint_url.removesuffix("/production")
    for url in (base + "/healthz", base + "/staging/healthz"):
        status, _, body = call(url)
        assert (status, json.loads(body)) == (404, {"message": "Not Found"}), url

    # A preflight is the API's own answer: 204, no body, the function never asked (it
    # would have answered 404 with a JSON body).
    status, headers, body = call(
        tenant.endpoint_url + "/orders",
        "OPTIONS",
        Origin=ORIGIN,
        **{"Access-Control-Request-Method": "POST"},
    )
    assert (status, body) == (204, b"")
    assert headers["access-control-allow-origin"] == ORIGIN
    assert headers["access-control-allow-methods"] == "GET,POST"
    status, headers, _ = call(
        tenant.endpoint_url + "/orders",
        "OPTIONS",
        Origin="https://evil.example",
        **{"Access-Control-Request-Method": "POST"},
    )
    assert status == 204 and "access-control-allow-origin" not in headers
    status, headers, _ = call(tenant.endpoint_url + "/healthz", Origin=ORIGIN)
    assert status == 200 and headers["access-control-allow-origin"] == ORIGIN

    # The first request's line in the stage's access log group, in the declared format.
    events = client("logs").filter_log_events(
        logGroupName=f"/aws/apigateway/opsconsole-{tenant.slug}"
    )["events"]
    lines = [json.loads(e["message"]) for e in events]
    [line] = [line for line in lines if line["requestId"] == request_id]
    assert line["httpMethod"] == "GET" and line["status"] == "200"
    assert line["routeKey"] == "$default" and line["protocol"] == "HTTP/1.1"
    assert line["path"] == "/production/healthz" and line["integrationError"] == "-"
    assert int(line["responseLength"]) > 0
    preflights = [line for line in lines if line["httpMethod"] == "OPTIONS"]
    assert len(preflights) == 2 and {p["status"] for p in preflights} == {"204"}


def test_a_2_0_mangum_app_on_default_with_throttling(baseline):
    packages = (Path(mangum.__file__).parent, Path(typing_extensions.__file__))
    # A bucket of 2 that refills once in 100 s: the third request finds it empty.
    register("ha-live-v2", HANDLER_V2, {"throttle_rate": 0.01, "throttle_burst": 2}, packages)
    tenant = onboard("two", "ha-live-v2")
    api_endpoint = client("apigatewayv2").get_apis()["Items"]
    [api] = [a for a in api_endpoint if a["Name"] == f"opsconsole-{tenant.slug}"]
    assert tenant.endpoint_url == api["ApiEndpoint"]

    status, _, body = call(tenant.endpoint_url + "/healthz")
    assert (status, json.loads(body)) == (200, {"path": "/healthz"})
    # No CORS configuration: an OPTIONS is a request like any other, for the app.
    status, headers, _ = call(
        tenant.endpoint_url + "/healthz",
        "OPTIONS",
        Origin=ORIGIN,
        **{"Access-Control-Request-Method": "GET"},
    )
    assert status == 404 and "access-control-allow-origin" not in headers
    status, _, body = call(tenant.endpoint_url + "/healthz")
    assert (status, json.loads(body)) == (429, {"message": "Too Many Requests"})

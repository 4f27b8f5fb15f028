"""A tenant's HTTP API takes the shape its release (or the tenant's override) declares:
payload format, stage, CORS, access logs and throttling, read back from API Gateway
(in-process moto, taught UpdateStage & co. by the local AWS's ``apigw_ext``); a change
made by hand is drift, and reconcile puts it back."""

from __future__ import annotations

import json
import uuid

import pytest
from mangum import Mangum

from deployments.models import Release, ReleaseMigration
from opsconsole.aws import lambda_
from opsconsole.aws.clients import client
from opsconsole.jobs.models import JobStatus
from opsconsole.sandbox.localaws.apigw_ext import patch_moto
from tenants import resources
from tenants.provisioning.api import api_stage
from tenants.provisioning.api_shape import ACCESS_LOG_FORMAT
from tests.health_apps import _Context, call_mangum
from tests.tenants.conftest import drop_tenant_databases, make_tenant, run_job

pytestmark = pytest.mark.usefixtures("seeded", "ha_dbs")

# Each run its own slugs (and tenant databases on the shared server): two runs at once
# must not drop each other's.
RUN = uuid.uuid4().hex[:4]

FULL_SHAPE = {
    "payload_format": "1.0",
    "stage": "production",
    "cors": {
        "allow_origins": ["https://app.example.com"],
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["content-type", "x-api-key"],
        "expose_headers": ["x-request-id"],
        "allow_credentials": True,
        "max_age_s": 600,
    },
    "access_logs": True,
    "throttle_rate": 50,
    "throttle_burst": 100,
}


@pytest.fixture(scope="module", autouse=True)
def _moto_knows_update_stage():
    patch_moto()


@pytest.fixture
def ha_dbs():
    drop_tenant_databases(f"tenant_ha{RUN}")
    yield
    drop_tenant_databases(f"tenant_ha{RUN}")


@pytest.fixture
def app(monkeypatch):
    """The tenant's app: an ASGI app behind Mangum, configured as a team deploys it on a
    named stage (``api_gateway_base_path``), answering GET /healthz; every event kept."""
    events: list[dict] = []

    async def asgi(scope, receive, send):
        ok = scope["method"] == "GET" and scope["path"] == "/healthz"
        await send(
            {
                "type": "http.response.start",
                "status": 200 if ok else 404,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"ok": true}' if ok else b"{}"})

    def invoke_within(*, name, qualifier, payload, timeout_s, region=None):
        events.append(payload)
        base = f"/{payload['requestContext']['stage']}"
        handler = Mangum(asgi, lifespan="off", api_gateway_base_path=base)
        answer = call_mangum(handler, payload, _Context(name, qualifier))
        return 200, json.dumps(answer), ""

    monkeypatch.setattr(lambda_, "invoke_within", invoke_within)
    return events


def release_with(seeded, version: str, api: dict) -> Release:
    """The seeded demo release's artifact and migrations, with ``api`` as its API shape."""
    base = Release.objects.get(version=seeded["release_version"])
    migrations = list(base.migrations.all())
    base.pk, base.version, base.starts_new_tenants = None, version, False
    base.app_settings = {"api": api}
    base.save()
    ReleaseMigration.objects.bulk_create(
        ReleaseMigration(release=base, version=m.version, name=m.name, sql=m.sql, sha256=m.sha256)
        for m in migrations
    )
    return base


def onboard(name: str, version: str, **spec):
    tenant = make_tenant(f"ha{RUN}-{name}", desired_release=version, **spec)
    job = run_job("tenant_provision", tenant)
    assert job.status == JobStatus.SUCCEEDED, [(s.name, s.error) for s in job.steps.all()]
    tenant.refresh_from_db()
    return tenant


def drift_fields(tenant) -> set[str]:
    output = run_job("tenant_drift_check", tenant).steps.get().output
    return {d["field"] for d in output["drift"] if d["kind"] in ("api", "domain")}


def api_of(tenant) -> dict:
    [api] = [a for a in apigw().get_apis()["Items"] if a["Name"] == f"opsconsole-{tenant.slug}"]
    return api


def apigw():
    return client("apigatewayv2")


def test_the_api_has_the_release_shape(seeded, app):
    release_with(seeded, "ha-full", FULL_SHAPE)
    tenant = onboard("full", "ha-full")
    api = api_of(tenant)
    api_id = api["ApiId"]

    [integration] = apigw().get_integrations(ApiId=api_id)["Items"]
    assert integration["PayloadFormatVersion"] == "1.0"
    # The declared stage alone: no $default beside it.
    [stage] = apigw().get_stages(ApiId=api_id)["Items"]
    assert stage["StageName"] == "production" and stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == 50.0
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 100
    log = stage["AccessLogSettings"]
    group_name = f"/aws/apigateway/opsconsole-{tenant.slug}"
    assert log["DestinationArn"].endswith(f":log-group:{group_name}")
    assert log["Format"] == ACCESS_LOG_FORMAT
    assert set(json.loads(log["Format"])) >= {
        "requestId",
        "ip",
        "requestTime",
        "httpMethod",
        "routeKey",
        "status",
        "protocol",
        "responseLength",
        "integrationError",
    }
    [group] = client("logs").describe_log_groups(logGroupNamePrefix=group_name)["logGroups"]
    assert group["retentionInDays"] == 30
    assert api["CorsConfiguration"] == {
        "AllowOrigins": ["https://app.example.com"],
        "AllowMethods": ["GET", "POST"],
        "AllowHeaders": ["content-type", "x-api-key"],
        "ExposeHeaders": ["x-request-id"],
        "AllowCredentials": True,
        "MaxAge": 600,
    }

    # The URL clients use has the stage in front of every path; the record says it all.
    assert tenant.endpoint_url == api["ApiEndpoint"] + "/production"
    details = resources.find(tenant, kind="api").details
    assert (details["payload_format_version"], details["stage"]) == ("1.0", "production")
    assert details["access_log_group"] == group_name
    assert api_stage(tenant) == "production"

    # The verify step sent what the API sends: format 1.0, the stage in the path.
    event = app[-1]
    assert event["version"] == "1.0" and event["httpMethod"] == "GET"
    assert event["path"] == "/production/healthz"
    assert event["requestContext"]["stage"] == "production"
    assert event["requestContext"]["path"] == "/production/healthz"

    assert drift_fields(tenant) == set()
    again = run_job("tenant_reconcile", tenant)
    assert again.status == JobStatus.SUCCEEDED
    assert [s["StageName"] for s in apigw().get_stages(ApiId=api_id)["Items"]] == ["production"]


def test_each_change_by_hand_is_drift_and_reconcile_puts_it_back(seeded, app):
    release_with(seeded, "ha-hand", FULL_SHAPE)
    tenant = onboard("hand", "ha-hand")
    api_id = api_of(tenant)["ApiId"]
    [integration] = apigw().get_integrations(ApiId=api_id)["Items"]

    apigw().update_integration(
        ApiId=api_id, IntegrationId=integration["IntegrationId"], PayloadFormatVersion="2.0"
    )
    apigw().update_stage(
        ApiId=api_id,
        StageName="production",
        DefaultRouteSettings={"ThrottlingRateLimit": 5.0, "ThrottlingBurstLimit": 5},
    )
    apigw().delete_access_log_settings(ApiId=api_id, StageName="production")
    apigw().update_api(
        ApiId=api_id,
        CorsConfiguration={"AllowOrigins": ["https://evil.example"], "AllowMethods": ["GET"]},
    )
    apigw().create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)

    assert drift_fields(tenant) == {
        "payload_format",
        "throttling",
        "access_logs",
        "cors",
        "stage $default",
    }

    assert run_job("tenant_reconcile", tenant).status == JobStatus.SUCCEEDED
    assert drift_fields(tenant) == set()
    [integration] = apigw().get_integrations(ApiId=api_id)["Items"]
    assert integration["PayloadFormatVersion"] == "1.0"
    [stage] = apigw().get_stages(ApiId=api_id)["Items"]
    assert stage["StageName"] == "production"
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == 50.0
    assert stage["AccessLogSettings"]["Format"] == ACCESS_LOG_FORMAT
    assert api_of(tenant)["CorsConfiguration"]["AllowOrigins"] == ["https://app.example.com"]


def test_a_tenant_override_moves_stage_and_domain_mapping(seeded, app):
    release_with(seeded, "ha-plain", {})
    tenant = onboard(
        "domain",
        "ha-plain",
        custom_domain=f"api.ha{RUN}.example",
        certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/ha",
    )
    api_id = api_of(tenant)["ApiId"]
    assert [s["StageName"] for s in apigw().get_stages(ApiId=api_id)["Items"]] == ["$default"]
    assert tenant.endpoint_url == f"https://api.ha{RUN}.example"
    assert app[-1]["version"] == "2.0" and app[-1]["rawPath"] == "/healthz"

    tenant.app_overrides = {"api": {"stage": "v1", "payload_format": "1.0"}}
    tenant.save(update_fields=["app_overrides"])
    assert drift_fields(tenant) == {"payload_format", "stage v1", "stage $default", "mapping stage"}

    assert run_job("tenant_reconcile", tenant).status == JobStatus.SUCCEEDED
    assert [s["StageName"] for s in apigw().get_stages(ApiId=api_id)["Items"]] == ["v1"]
    [mapping] = apigw().get_api_mappings(DomainName=f"api.ha{RUN}.example")["Items"]
    assert (mapping["ApiId"], mapping["Stage"]) == (api_id, "v1")
    tenant.refresh_from_db()
    # Behind the domain the mapping stands for the stage: no prefix in URL or path.
    assert tenant.endpoint_url == f"https://api.ha{RUN}.example"
    event = app[-1]
    assert (event["version"], event["path"], event["requestContext"]["stage"]) == (
        "1.0",
        "/healthz",
        "v1",
    )
    assert drift_fields(tenant) == set()

"""The health check's event and judgement, judged by real adapters and by Lambda answers.

The events are fed to Mangum (an ASGI app) and apig-wsgi (a Flask app), the adapters
Python apps on Lambda use, in payload formats 1.0 and 2.0: each must route the request to
the app's own ``GET /healthz``. Failure answers come from botocore's Stubber (in-process
moto only echoes, and an echoed 2.0 event would count as a 200).
"""

from __future__ import annotations

import base64
import json

import pytest
from apig_wsgi import make_lambda_handler
from botocore.exceptions import ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from flask import Flask, request
from mangum import Mangum

from opsconsole.aws.clients import client
from tenants import naming, resources
from tenants.provisioning import health_check
from tenants.provisioning.health_check import ApiShape, health_event, judge
from tenants.release_source import HealthCheck
from tests.health_apps import call_mangum
from tests.tenants.conftest import make_tenant

SHAPE = {
    "api_id": "a1b2c3d4e5",
    "domain": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
    "account_id": "123456789012",
}
FORMATS = ["1.0", "2.0"]


def event(fmt: str, check: HealthCheck | None = None, **shape) -> dict:
    return health_event(check or HealthCheck(), ApiShape(payload_format=fmt, **{**SHAPE, **shape}))


# --- the event, as real adapters read it -----------------------------------------------


def asgi_app(seen: list, status: int = 200, body: bytes = b'{"status": "ok"}'):
    async def app(scope, receive, send):
        seen.append(scope)
        found = scope["method"] == "GET" and scope["path"] == "/healthz"
        await send(
            {
                "type": "http.response.start",
                "status": status if found else 404,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body if found else b"not found"})

    return app


@pytest.mark.parametrize("fmt", FORMATS)
def test_mangum_routes_the_event_to_the_apps_health_route(fmt):
    seen: list = []
    request = event(fmt, HealthCheck(path="/healthz?deep=1"))
    answer = call_mangum(Mangum(asgi_app(seen), lifespan="off"), request, None)
    [scope] = seen
    assert (scope["method"], scope["path"]) == ("GET", "/healthz")
    assert scope["query_string"] == b"deep=1"
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    assert headers["host"] == SHAPE["domain"]
    assert headers["user-agent"] == "opsconsole-health-check"
    assert scope["scheme"] == "https"
    # Mangum's answer, read as API Gateway reads it.
    verdict = judge(HealthCheck(path="/healthz?deep=1"), fmt, raw=json.dumps(answer))
    assert verdict.healthy and verdict.status == 200
    assert verdict.message == 'GET /healthz?deep=1 answered 200: {"status": "ok"}'


@pytest.mark.parametrize("fmt", FORMATS)
def test_mangum_apps_failure_is_the_apps_own_status_and_body(fmt):
    app = asgi_app([], status=500, body=b'{"error": "db down"}')
    answer = call_mangum(Mangum(app, lifespan="off"), event(fmt), None)
    verdict = judge(HealthCheck(), fmt, raw=json.dumps(answer))
    assert not verdict.healthy and verdict.status == 500
    assert verdict.message == 'GET /healthz answered 500: {"error": "db down"}'


def flask_app(seen: list) -> Flask:
    app = Flask("tenant")

    @app.get("/healthz")
    def healthz():
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "args": request.args.to_dict(),
                "host": request.host,
                "agent": request.headers.get("User-Agent"),
                "remote": request.remote_addr,
            }
        )
        return {"status": "ok"}

    return app


@pytest.mark.parametrize("fmt", FORMATS)
def test_apig_wsgi_routes_the_event_to_the_flask_apps_health_route(fmt):
    seen: list = []
    handler = make_lambda_handler(flask_app(seen))
    answer = handler(event(fmt, HealthCheck(path="/healthz?deep=1")), None)
    [request_seen] = seen
    assert request_seen["method"] == "GET" and request_seen["path"] == "/healthz"
    assert request_seen["args"] == {"deep": "1"}
    assert request_seen["host"] == SHAPE["domain"]
    assert request_seen["agent"] == "opsconsole-health-check"
    assert request_seen["remote"] == health_check.SOURCE_IP
    verdict = judge(HealthCheck(path="/healthz?deep=1"), fmt, raw=json.dumps(answer))
    assert verdict.healthy and verdict.status == 200


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_route_the_app_does_not_have_fails_with_its_404(fmt):
    handler = make_lambda_handler(flask_app([]))
    check = HealthCheck(path="/health")
    verdict = judge(check, fmt, raw=json.dumps(handler(event(fmt, check), None)))
    assert not verdict.healthy and verdict.status == 404
    assert verdict.message.startswith("GET /health answered 404: ")


def test_a_plain_handler_finds_method_and_path_where_its_format_puts_them():
    # A handler without an adapter, as aws-lambda-go's events.APIGatewayV2HTTPRequest
    # (2.0) and events.APIGatewayProxyRequest (1.0) name the fields.
    v2 = event("2.0")
    assert (v2["requestContext"]["http"]["method"], v2["rawPath"]) == ("GET", "/healthz")
    assert v2["routeKey"] == "$default" and v2["requestContext"]["stage"] == "$default"
    assert v2["isBase64Encoded"] is False and "body" not in v2
    v1 = event("1.0")
    assert (v1["httpMethod"], v1["path"]) == ("GET", "/healthz")
    assert v1["requestContext"]["identity"]["userAgent"] == "opsconsole-health-check"
    assert v1["queryStringParameters"] is None and v1["body"] is None


# The JSON types aws-lambda-go's structs decode (events/apigw.go): a value of another type
# is a decode error in Go, so the whole event would fail before the handler ran.
_GO_V2 = {
    "version": str,
    "routeKey": str,
    "rawPath": str,
    "rawQueryString": str,
    "headers": dict,
    "isBase64Encoded": bool,
    ("requestContext", "accountId"): str,
    ("requestContext", "apiId"): str,
    ("requestContext", "domainName"): str,
    ("requestContext", "domainPrefix"): str,
    ("requestContext", "requestId"): str,
    ("requestContext", "routeKey"): str,
    ("requestContext", "stage"): str,
    ("requestContext", "time"): str,
    ("requestContext", "timeEpoch"): int,
    ("requestContext", "http", "method"): str,
    ("requestContext", "http", "path"): str,
    ("requestContext", "http", "protocol"): str,
    ("requestContext", "http", "sourceIp"): str,
    ("requestContext", "http", "userAgent"): str,
}
_GO_V1 = {
    "resource": str,
    "path": str,
    "httpMethod": str,
    "headers": dict,
    "multiValueHeaders": dict,
    "isBase64Encoded": bool,
    ("requestContext", "accountId"): str,
    ("requestContext", "apiId"): str,
    ("requestContext", "httpMethod"): str,
    ("requestContext", "requestId"): str,
    ("requestContext", "resourcePath"): str,
    ("requestContext", "stage"): str,
    ("requestContext", "requestTimeEpoch"): int,
    ("requestContext", "identity", "sourceIp"): str,
    ("requestContext", "identity", "userAgent"): str,
}


@pytest.mark.parametrize(("fmt", "types"), [("2.0", _GO_V2), ("1.0", _GO_V1)])
def test_the_event_has_the_types_aws_lambda_go_decodes(fmt, types):
    built = json.loads(json.dumps(event(fmt)))
    for key, wanted in types.items():
        value = built
        for part in key if isinstance(key, tuple) else (key,):
            value = value[part]
        assert type(value) is wanted, (key, value)
    if fmt == "1.0":
        assert all(isinstance(v, list) for v in built["multiValueHeaders"].values())


def test_the_greedy_proxy_route_hands_the_path_over():
    v1 = event("1.0", route_key="ANY /{proxy+}")
    assert v1["resource"] == "/{proxy+}" and v1["pathParameters"] == {"proxy": "healthz"}
    v2 = event("2.0", route_key="ANY /{proxy+}")
    assert v2["routeKey"] == "ANY /{proxy+}" and v2["pathParameters"] == {"proxy": "healthz"}


# --- the answer, as API Gateway reads it -----------------------------------------------


def test_a_function_error_is_unhealthy_with_its_type_and_message():
    raw = json.dumps({"errorType": "KeyError", "errorMessage": "'DB_SECRET_ARN'"})
    verdict = judge(HealthCheck(), "2.0", raw=raw, function_error="Unhandled")
    assert not verdict.healthy
    assert verdict.message == (
        "GET /healthz failed in the function (Unhandled): KeyError: 'DB_SECRET_ARN'"
    )


def test_format_2_reads_json_without_a_status_code_as_200():
    # AWS's rule for 2.0: valid JSON without a statusCode is a 200 whose body is the answer.
    assert judge(HealthCheck(), "2.0", raw='{"ok": true}').status == 200
    assert judge(HealthCheck(), "2.0", raw='"Hello from Lambda!"').message == (
        "GET /healthz answered 200: Hello from Lambda!"
    )


def test_format_1_needs_a_status_code():
    verdict = judge(HealthCheck(), "1.0", raw='{"ok": true}')
    assert not verdict.healthy and "without a statusCode" in verdict.message


def test_an_answer_that_is_not_json_is_unhealthy():
    verdict = judge(HealthCheck(), "2.0", raw="Traceback (most recent call last)")
    assert not verdict.healthy and "not JSON" in verdict.message


def test_a_base64_body_is_decoded():
    body = base64.b64encode(b"warming up").decode()
    raw = json.dumps({"statusCode": 503, "body": body, "isBase64Encoded": True})
    assert judge(HealthCheck(), "2.0", raw=raw).message == "GET /healthz answered 503: warming up"


def test_the_declared_statuses_decide():
    check = HealthCheck(statuses="200-299,301")
    for status, healthy in ((204, True), (301, True), (302, False), (500, False)):
        raw = json.dumps({"statusCode": status, "body": ""})
        assert judge(check, "1.0", raw=raw).healthy is healthy, status
    # A string status is what API Gateway accepts too.
    assert judge(check, "1.0", raw='{"statusCode": "204"}').status == 204


def test_the_body_is_cut_at_300_characters():
    raw = json.dumps({"statusCode": 500, "body": "x" * 1000})
    verdict = judge(HealthCheck(), "2.0", raw=raw)
    assert verdict.body == "x" * 300 + "…"
    assert len(verdict.message) < 400


# --- the declaration -------------------------------------------------------------------


def test_statuses_parse_lists_and_ranges():
    assert health_check.parse_statuses("200-299, 301") == ((200, 299), (301, 301))
    assert health_check.normalize_statuses([200, "300-399"]) == "200,300-399"
    for bad, why in (
        ("", "at least one"),
        ("200,,301", "empty item"),
        ("2xx", "neither a status"),
        ("299-200", "backwards"),
        ("99", "100 to 599"),
    ):
        with pytest.raises(ValueError, match=why):
            health_check.parse_statuses(bad)


def test_problems_name_each_field():
    found = health_check.problems(
        method="FETCH", path="healthz", statuses="2xx", timeout_s=31, function_timeout_s=60
    )
    assert set(found) == {"health_method", "health_path", "health_statuses", "health_timeout_s"}
    assert "30" in found["health_timeout_s"]
    assert (
        health_check.problems(
            method="get", path="/healthz", statuses="200-299", timeout_s=5, function_timeout_s=30
        )
        == {}
    )
    # Never longer than the function may run.
    assert (
        "between 1 and 3"
        in health_check.problems(
            method="GET", path="/healthz", statuses="200", timeout_s=5, function_timeout_s=3
        )["health_timeout_s"]
    )
    assert "health_path" in health_check.problems(
        method="GET", path="/health z", statuses="200", timeout_s=5, function_timeout_s=30
    )


# --- check(): the invoke, with Lambda's answers from Stubber ---------------------------


@pytest.fixture
def tenant(aws, db, health_apps, monkeypatch):
    """A tenant with an API record; invokes reach Lambda (stubbed), not the test apps."""
    health_apps.stop(monkeypatch)
    tenant = make_tenant("hc-one", status="active")
    resources.record(tenant, kind="api", name=naming.api_name(tenant.slug), identifier="a1b2c3")
    return tenant


def _answer(payload: dict | str, **extra) -> dict:
    raw = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
    import io

    return {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(raw), len(raw)), **extra}


def _stub(tenant, check: HealthCheck):
    return Stubber(client("lambda", tenant.region, read_timeout_s=check.timeout_s))


def test_check_sends_the_event_to_the_qualifier_and_reads_a_500(tenant):
    check = HealthCheck()
    with _stub(tenant, check) as stub:
        stub.add_response(
            "invoke",
            _answer({"statusCode": 500, "body": '{"error": "db down"}'}),
            {"FunctionName": naming.function_name(tenant.slug), "Qualifier": "7", "Payload": ANY},
        )
        verdict = health_check.check(tenant, spec=check, qualifier="7")
        stub.assert_no_pending_responses()
    assert not verdict.healthy
    assert verdict.message == 'GET /healthz answered 500: {"error": "db down"}'


def test_check_reports_an_unhandled_error(tenant):
    check = HealthCheck()
    error = {"errorType": "Runtime.ImportModuleError", "errorMessage": "No module named 'app'"}
    with _stub(tenant, check) as stub:
        stub.add_response("invoke", _answer(error, FunctionError="Unhandled"))
        verdict = health_check.check(tenant, spec=check, qualifier="live")
    assert not verdict.healthy
    assert "Runtime.ImportModuleError: No module named 'app'" in verdict.message


def test_check_uses_the_payload_format_the_api_record_names(tenant):
    resources.record(
        tenant,
        kind="api",
        name=naming.api_name(tenant.slug),
        identifier="a1b2c3",
        details={"payload_format_version": "1.0"},
    )
    assert health_check.api_shape(tenant).payload_format == "1.0"
    check = HealthCheck()
    with _stub(tenant, check) as stub:
        # An answer fit for 2.0 only: format 1.0 needs a statusCode.
        stub.add_response("invoke", _answer({"ok": True}))
        verdict = health_check.check(tenant, spec=check, qualifier="3")
    assert not verdict.healthy and "without a statusCode" in verdict.message


def test_a_tenant_without_a_format_on_record_gets_2_0(tenant):
    assert health_check.api_shape(tenant).payload_format == "2.0"
    assert health_check.api_shape(tenant).domain == "a1b2c3.execute-api.us-east-1.amazonaws.com"


def test_no_answer_within_the_timeout_is_unhealthy(tenant, monkeypatch):
    lam = client("lambda", tenant.region, read_timeout_s=2)

    def slow(**kwargs):
        raise ReadTimeoutError(endpoint_url="https://lambda.us-east-1.amazonaws.com")

    monkeypatch.setattr(lam, "invoke", slow)
    verdict = health_check.check(tenant, spec=HealthCheck(timeout_s=2), qualifier="4")
    assert not verdict.healthy and verdict.message == "GET /healthz gave no answer within 2 s"


def test_a_throttled_invoke_is_retryable_not_the_apps_fault(tenant):
    check = HealthCheck()
    with _stub(tenant, check) as stub:
        stub.add_client_error("invoke", "TooManyRequestsException", "Rate Exceeded.", 429)
        verdict = health_check.check(tenant, spec=check, qualifier="4")
    assert not verdict.healthy and verdict.retryable


# --- the declaration on the page and in the API ----------------------------------------


@pytest.fixture
def bucket(aws, db):
    """The artifacts bucket a zip release is stored in."""
    from django.conf import settings

    client("s3").create_bucket(Bucket=settings.BASELINE["artifact_bucket"])


def _zip() -> bytes:
    import io
    import zipfile

    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return {}\n")
    return package.getvalue()


def _form(**changes) -> dict:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return {
        "version": "2026.12.7",
        "artifact": "zip",
        "runtime": "python3.12",
        "handler": "app.handler",
        "architecture": "x86_64",
        "memory_mb": 256,
        "timeout_s": 10,
        "zip_file": SimpleUploadedFile("app.zip", _zip()),
        **changes,
    }


def test_the_register_page_says_what_is_wrong_field_by_field(bucket, client_for, operator_user):
    from deployments.models import Release

    page = client_for(operator_user)
    refused = page.post(
        "/releases/new/",
        _form(health_path="healthz", health_statuses="2xx", health_timeout_s=11),
    )
    assert refused.status_code == 200
    errors = refused.context["form"].errors
    assert "starts with /" in errors["health_path"][0]
    assert "neither a status" in errors["health_statuses"][0]
    assert "between 1 and 10" in errors["health_timeout_s"][0]
    assert not Release.objects.filter(version="2026.12.7").exists()


def test_the_release_page_shows_the_declared_check(bucket, client_for, operator_user, viewer_user):
    from deployments.models import Release

    registered = client_for(operator_user).post(
        "/releases/new/",
        _form(health_path="/api/v1/health/", health_statuses="200-299, 301", health_timeout_s=3),
    )
    assert registered.status_code == 302
    release = Release.objects.get(version="2026.12.7")
    assert (release.health_method, release.health_path) == ("GET", "/api/v1/health/")
    assert (release.health_statuses, release.health_timeout_s) == ("200-299,301", 3)
    page = client_for(viewer_user).get("/releases/2026.12.7/")
    assert b"GET /api/v1/health/</code> answers 200-299,301 within 3 s" in page.content


def test_a_form_without_the_health_fields_gets_the_defaults(bucket, client_for, operator_user):
    from deployments.models import Release

    assert client_for(operator_user).post("/releases/new/", _form()).status_code == 302
    release = Release.objects.get(version="2026.12.7")
    assert release.health_summary == "GET /healthz answers 200-299 within 5 s"


def test_the_api_takes_the_check_and_refuses_it_field_by_field(bucket, client, operator_user):
    from opsconsole.api.tokens import api_token_create

    _, raw = api_token_create(user=operator_user, name="ci")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}

    def post(**fields):
        from django.core.files.uploadedfile import SimpleUploadedFile

        body = {
            "version": "2026.12.8",
            "artifact": "zip",
            "runtime": "python3.12",
            "handler": "app.handler",
            "timeout_s": 30,
            "file": SimpleUploadedFile("app.zip", _zip()),
            **fields,
        }
        return client.post("/api/v1/releases/upload", body, **headers)

    # The release's own checks, with the field at fault...
    refused = post(health_method="FETCH")
    assert refused.status_code == 400
    assert refused.json()["problems"] == [
        {"field": "health_method", "message": "one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"}
    ]
    # ...and the schema's, before anything is stored.
    refused = post(health_timeout_s="soon")
    assert refused.status_code == 422 and refused.json()["field"] == "health_timeout_s"
    made = post(health_path="/ready", health_statuses="200,204")
    assert made.status_code == 201, made.content
    assert {k: v for k, v in made.json().items() if k.startswith("health_")} == {
        "health_method": "GET",
        "health_path": "/ready",
        "health_statuses": "200,204",
        "health_timeout_s": 5,
    }

"""HTTP APIs answer real HTTP on the local AWS: a request to
``/_aws/execute-api/<api-id>/...`` (or with the API's or a custom domain's Host) becomes the
payload format 2.0 or 1.0 event, a real Python handler runs (awslambdaric), and its answer
comes back as HTTP. Apps written with Mangum (ASGI) and apig-wsgi (WSGI) run unchanged."""

from __future__ import annotations

import http.client
import io
import json
import shutil
import subprocess
import time
import urllib.request
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import mangum
import pytest
import typing_extensions

pytestmark = pytest.mark.integration

REGION = "us-east-1"
ACCOUNT = "123456789012"

ECHO = """
import json

def handler(event, context):
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(event),
    }
"""


def _client(endpoint: str, service: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )


def zip_of(files: dict[str, str | bytes], packages: tuple[Path, ...] = ()) -> bytes:
    """A function zip: ``files`` plus whole package directories (or single modules) copied
    from this environment's site-packages, as `pip install -t` would have put them."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
        for package in packages:
            if package.is_file():
                archive.write(package, package.name)
                continue
            for path in package.rglob("*"):
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.write(path, str(Path(package.name) / path.relative_to(package)))
    return out.getvalue()


class Aws:
    """Functions with a `live` alias, and HTTP APIs in front of them, on one local AWS."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.lam = _client(endpoint, "lambda")
        self.apigw = _client(endpoint, "apigatewayv2")
        self.cloudwatch = _client(endpoint, "cloudwatch")
        role = f"apigw-test-{uuid.uuid4().hex[:8]}"
        self.role = _client(endpoint, "iam").create_role(
            RoleName=role, AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]

    def function(self, files: dict[str, str | bytes], packages=(), **extra) -> tuple[str, str]:
        """(name, ARN of its `live` alias)."""
        name = f"apigw-{uuid.uuid4().hex[:10]}"
        self.lam.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=self.role,
            Handler="app.handler",
            Code={"ZipFile": zip_of(files, packages)},
            Timeout=extra.pop("Timeout", 10),
            **extra,
        )
        version = self.lam.publish_version(FunctionName=name)["Version"]
        alias = self.lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
        return name, alias["AliasArn"]

    def api(
        self,
        function: str,
        target_arn: str,
        *,
        version: str = "2.0",
        routes: tuple[str, ...] = ("$default",),
        stages: tuple[str, ...] = ("$default",),
        permission: bool = True,
        uri: str | None = None,
        timeout_ms: int | None = None,
    ) -> str:
        api_id = self.apigw.create_api(Name=f"api-{function}", ProtocolType="HTTP")["ApiId"]
        extra = {"TimeoutInMillis": timeout_ms} if timeout_ms else {}
        integration = self.apigw.create_integration(
            ApiId=api_id,
            IntegrationType="AWS_PROXY",
            IntegrationUri=uri or target_arn,
            PayloadFormatVersion=version,
            IntegrationMethod="POST",
            **extra,
        )["IntegrationId"]
        for key in routes:
            self.apigw.create_route(
                ApiId=api_id, RouteKey=key, Target=f"integrations/{integration}"
            )
        for stage in stages:
            self.apigw.create_stage(ApiId=api_id, StageName=stage, AutoDeploy=True)
        if permission:
            self.lam.add_permission(
                FunctionName=function,
                Qualifier="live",
                StatementId=f"apigw-{api_id}",
                Action="lambda:InvokeFunction",
                Principal="apigateway.amazonaws.com",
                SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/*/*",
            )
        return api_id

    def echo_api(self, **kwargs) -> str:
        name, alias = self.function({"app.py": ECHO})
        return self.api(name, alias, **kwargs)


@pytest.fixture(scope="module")
def aws(local_aws_server) -> Aws:
    return Aws(local_aws_server)


def call(
    aws: Aws,
    method: str,
    path: str,
    *,
    headers: list[tuple[str, str]] = (),
    body: bytes | None = None,
    timeout: float = 60,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    parts = urlsplit(aws.endpoint)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=any(k.lower() == "host" for k, _ in headers))
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def through(api_id: str, path: str) -> str:
    return f"/_aws/execute-api/{api_id}{path}"


def test_payload_2_0_event_from_a_real_request(aws):
    api_id = aws.echo_api(routes=("GET /items/{id}", "$default"))
    status, headers, body = call(
        aws,
        "GET",
        through(api_id, "/items/42?a=1&a=2&b=x%20y&empty="),
        headers=[
            ("Cookie", "session=abc; theme=dark"),
            ("X-Repeated", "one"),
            ("X-Repeated", "two"),
            ("User-Agent", "apigw-test/1.0"),
        ],
    )
    assert status == 200, body
    assert headers["apigw-requestid"]
    event = json.loads(body)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /items/{id}"
    assert event["rawPath"] == "/items/42"
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y&empty="
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y", "empty": ""}
    assert event["pathParameters"] == {"id": "42"}
    assert event["cookies"] == ["session=abc", "theme=dark"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-repeated"] == "one,two"
    assert event["headers"]["user-agent"] == "apigw-test/1.0"
    assert all(name == name.lower() for name in event["headers"])
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    context = event["requestContext"]
    assert context["accountId"] == ACCOUNT
    assert context["apiId"] == api_id
    assert context["domainName"] == f"{api_id}.execute-api.{REGION}.amazonaws.com"
    assert context["domainPrefix"] == api_id
    assert context["http"] == {
        "method": "GET",
        "path": "/items/42",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "apigw-test/1.0",
    }
    assert context["requestId"] == headers["apigw-requestid"]
    assert context["routeKey"] == "GET /items/{id}"
    assert context["stage"] == "$default"
    assert abs(context["timeEpoch"] / 1000 - time.time()) < 60
    datetime.strptime(context["time"], "%d/%b/%Y:%H:%M:%S %z")


def test_payload_1_0_event_and_a_named_stage(aws):
    api_id = aws.echo_api(version="1.0", routes=("POST /orders/{id}",), stages=("prod",))
    status, _, body = call(
        aws,
        "POST",
        through(api_id, "/prod/orders/7?x=1&x=2"),
        headers=[("Content-Type", "application/json"), ("X-Repeated", "a"), ("X-Repeated", "b")],
        body=b'{"n": 1}',
    )
    assert status == 200, body
    event = json.loads(body)
    assert event["version"] == "1.0"
    assert event["resource"] == "/orders/{id}"
    # The stage stays in the path the function sees, as on AWS.
    assert event["path"] == "/prod/orders/7"
    assert event["httpMethod"] == "POST"
    assert event["queryStringParameters"] == {"x": "2"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
    assert event["multiValueHeaders"]["x-repeated"] == ["a", "b"]
    assert event["headers"]["content-type"] == "application/json"
    assert event["pathParameters"] == {"id": "7"}
    assert event["stageVariables"] is None
    assert event["body"] == '{"n": 1}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["httpMethod"] == "POST"
    assert context["path"] == "/prod/orders/7"
    assert context["stage"] == "prod"
    assert context["resourcePath"] == "/orders/{id}"
    assert context["identity"]["sourceIp"] == "127.0.0.1"

    # Version 2.0 on a named stage: rawPath keeps the stage, routeKey does not have it.
    api2 = aws.echo_api(routes=("GET /orders/{id}",), stages=("prod",))
    status, _, body = call(aws, "GET", through(api2, "/prod/orders/9"))
    event = json.loads(body)
    assert (event["rawPath"], event["routeKey"], event["requestContext"]["stage"]) == (
        "/prod/orders/9",
        "GET /orders/{id}",
        "prod",
    )
    # No $default stage: a path outside the named one is not found.
    status, _, body = call(aws, "GET", through(api2, "/orders/9"))
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})


def test_binary_bodies_both_ways(aws):
    name, alias = aws.function(
        {
            "app.py": (
                "import base64\n"
                "def handler(event, context):\n"
                "    data = base64.b64decode(event['body']) if event['isBase64Encoded'] "
                "else event['body'].encode()\n"
                "    return {'statusCode': 200, 'isBase64Encoded': True,\n"
                "            'headers': {'content-type': 'application/octet-stream',\n"
                "                        'x-was-base64': str(event['isBase64Encoded'])},\n"
                "            'body': base64.b64encode(data[::-1]).decode()}\n"
            )
        }
    )
    api_id = aws.api(name, alias)
    payload = bytes(range(256)) * 4
    status, headers, body = call(
        aws,
        "POST",
        through(api_id, "/upload"),
        headers=[("Content-Type", "application/octet-stream")],
        body=payload,
    )
    assert status == 200
    assert headers["x-was-base64"] == "True"
    assert headers["content-type"] == "application/octet-stream"
    assert body == payload[::-1]


def test_response_mapping_2_0(aws):
    name, alias = aws.function(
        {
            "app.py": (
                "def handler(event, context):\n"
                "    if event['rawPath'] == '/plain':\n"
                "        return {'hello': 'world'}\n"
                "    if event['rawPath'] == '/string':\n"
                "        return 'just text'\n"
                "    return {'statusCode': 201, 'headers': {'x-app': 'yes'},\n"
                "            'cookies': ['a=1; Path=/', 'b=2; HttpOnly'], 'body': 'made'}\n"
            )
        }
    )
    api_id = aws.api(name, alias)
    status, headers, body = call(aws, "GET", through(api_id, "/made"))
    assert (status, body, headers["x-app"]) == (201, b"made", "yes")
    assert headers.get_all("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    # Valid JSON without statusCode: a 200 JSON answer with it as the body.
    status, headers, body = call(aws, "GET", through(api_id, "/plain"))
    assert (status, json.loads(body), headers["content-type"]) == (
        200,
        {"hello": "world"},
        "application/json",
    )
    status, _, body = call(aws, "GET", through(api_id, "/string"))
    assert (status, body) == (200, b"just text")


def test_response_mapping_1_0_and_malformed_answers(aws):
    name, alias = aws.function(
        {
            "app.py": (
                "def handler(event, context):\n"
                "    if event['path'] == '/bad':\n"
                "        return {'hello': 'no statusCode'}\n"
                "    return {'statusCode': 202, 'headers': {'x-one': '1'},\n"
                "            'multiValueHeaders': {'x-many': ['a', 'b']},\n"
                "            'body': 'ok', 'isBase64Encoded': False}\n"
            )
        }
    )
    api_id = aws.api(name, alias, version="1.0")
    status, headers, body = call(aws, "GET", through(api_id, "/fine"))
    assert (status, body, headers["x-one"]) == (202, b"ok", "1")
    assert headers.get_all("x-many") == ["a", "b"]
    status, _, body = call(aws, "GET", through(api_id, "/bad"))
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})


def test_route_selection(aws):
    routes = (
        "GET /pets/{id}",
        "GET /pets/dog",
        "ANY /pets/{proxy+}",
        "POST /pets/{id}",
        "ANY /{proxy+}",
        "$default",
    )
    api_id = aws.echo_api(routes=routes)

    def route_of(method: str, path: str) -> tuple[str, dict | None]:
        status, _, body = call(
            aws, method, through(api_id, path), body=b"" if method != "GET" else None
        )
        assert status == 200, body
        event = json.loads(body)
        return event["routeKey"], event.get("pathParameters")

    assert route_of("GET", "/pets/dog") == ("GET /pets/dog", None)
    assert route_of("GET", "/pets/cat") == ("GET /pets/{id}", {"id": "cat"})
    assert route_of("POST", "/pets/cat") == ("POST /pets/{id}", {"id": "cat"})
    assert route_of("DELETE", "/pets/cat") == ("ANY /pets/{proxy+}", {"proxy": "cat"})
    assert route_of("GET", "/pets/cat/toys") == ("ANY /pets/{proxy+}", {"proxy": "cat/toys"})
    assert route_of("GET", "/elsewhere/deep") == ("ANY /{proxy+}", {"proxy": "elsewhere/deep"})
    assert route_of("GET", "/") == ("$default", None)

    strict = aws.echo_api(routes=("GET /only",))
    assert call(aws, "GET", through(strict, "/only"))[0] == 200
    status, _, body = call(aws, "GET", through(strict, "/other"))
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})
    status, _, body = call(aws, "GET", through("nosuchapi", "/"))
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})


def test_integration_failures_answer_as_http_apis_do(aws):
    raising, raising_alias = aws.function(
        {"app.py": "def handler(event, context):\n    raise ValueError('broken release')\n"}
    )
    api_id = aws.api(raising, raising_alias)
    status, _, body = call(aws, "GET", through(api_id, "/"))
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})

    # The console must add the permission: without it API Gateway cannot invoke.
    no_permission = aws.echo_api(permission=False)
    status, _, body = call(aws, "GET", through(no_permission, "/"))
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})

    throttled, throttled_alias = aws.function({"app.py": ECHO})
    aws.lam.put_function_concurrency(FunctionName=throttled, ReservedConcurrentExecutions=0)
    api_id = aws.api(throttled, throttled_alias)
    status, _, body = call(aws, "GET", through(api_id, "/"))
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})

    slow, slow_alias = aws.function(
        {"app.py": "import time\ndef handler(event, context):\n    time.sleep(5)\n    return 1\n"}
    )
    api_id = aws.api(slow, slow_alias, timeout_ms=1000)
    started = time.monotonic()
    status, _, body = call(aws, "GET", through(api_id, "/"))
    assert (status, json.loads(body)) == (503, {"message": "Service Unavailable"})
    assert time.monotonic() - started < 4


def test_host_header_and_custom_domain(aws):
    name, alias = aws.function({"app.py": ECHO})
    # The invocations-path form of the integration URI works too.
    uri = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{alias}/invocations"
    api_id = aws.api(name, alias, routes=("GET /hello",), uri=uri)
    status, _, body = call(
        aws,
        "GET",
        "/hello",
        headers=[("Host", f"{api_id}.execute-api.{REGION}.amazonaws.com:4566")],
    )
    assert status == 200, body
    assert json.loads(body)["requestContext"]["apiId"] == api_id

    domain = f"api-{uuid.uuid4().hex[:8]}.example.com"
    aws.apigw.create_domain_name(
        DomainName=domain,
        DomainNameConfigurations=[
            {
                "CertificateArn": f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/x",
                "EndpointType": "REGIONAL",
            }
        ],
    )
    aws.apigw.create_api_mapping(
        DomainName=domain, ApiId=api_id, Stage="$default", ApiMappingKey="v1"
    )
    status, _, body = call(aws, "GET", "/v1/hello", headers=[("Host", domain)])
    assert status == 200, body
    event = json.loads(body)
    # 2.0's rawPath has no mapping key; the domain is the request's.
    assert event["rawPath"] == "/hello"
    assert event["requestContext"]["domainName"] == domain
    assert event["requestContext"]["domainPrefix"] == domain.split(".")[0]
    status, _, _ = call(aws, "GET", "/v2/hello", headers=[("Host", domain)])
    assert status == 404


MANGUM_APP = """
from mangum import Mangum

async def app(scope, receive, send):
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    reply = (
        f'{{"method": "{scope["method"]}", "path": "{scope["path"]}", '
        f'"query": "{scope["query_string"].decode()}", "body": "{body.decode()}"}}'
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"set-cookie", b"seen=1"),
        (b"set-cookie", b"again=2")]})
    await send({"type": "http.response.body", "body": reply})

handler = Mangum(app, lifespan="off")
"""

APIG_WSGI_APP = """
import json
from apig_wsgi import make_lambda_handler

def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length).decode()
    reply = json.dumps({
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "cookie": environ.get("HTTP_COOKIE", ""),
        "body": body,
    }).encode()
    start_response("201 Created", [("Content-Type", "application/json"),
                                   ("Set-Cookie", "w=1"), ("Set-Cookie", "x=2")])
    return [reply]

handler = make_lambda_handler(app)
"""


@pytest.mark.parametrize("version", ["2.0", "1.0"])
def test_a_mangum_asgi_app_runs_unchanged(aws, version):
    packages = (Path(mangum.__file__).parent, Path(typing_extensions.__file__))
    name, alias = aws.function({"app.py": MANGUM_APP}, packages=packages)
    api_id = aws.api(name, alias, version=version)
    status, headers, body = call(
        aws,
        "POST",
        through(api_id, "/notes/1?tag=a&tag=b"),
        headers=[("Content-Type", "text/plain")],
        body=b"hello",
    )
    assert status == 200, body
    assert json.loads(body) == {
        "method": "POST",
        "path": "/notes/1",
        "query": "tag=a&tag=b",
        "body": "hello",
    }
    assert sorted(headers.get_all("set-cookie")) == ["again=2", "seen=1"]


@pytest.mark.parametrize("version", ["2.0", "1.0"])
def test_an_apig_wsgi_app_runs_unchanged(aws, version):
    import apig_wsgi

    name, alias = aws.function(
        {"app.py": APIG_WSGI_APP}, packages=(Path(apig_wsgi.__file__).parent,)
    )
    api_id = aws.api(name, alias, version=version)
    status, headers, body = call(
        aws,
        "PUT",
        through(api_id, "/things/x?q=1"),
        headers=[("Content-Type", "application/json"), ("Cookie", "k=v")],
        body=b'{"a": 1}',
    )
    assert status == 201, body
    got = json.loads(body)
    assert (got["method"], got["path"], got["query"], got["body"]) == (
        "PUT",
        "/things/x",
        "q=1",
        '{"a": 1}',
    )
    assert "k=v" in got["cookie"]
    assert sorted(headers.get_all("set-cookie")) == ["w=1", "x=2"]


def test_curl_and_urllib_reach_the_api(aws):
    api_id = aws.echo_api(routes=("GET /ping",))
    url = f"{aws.endpoint}{through(api_id, '/ping?from=urllib')}"
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - local test server
        assert json.loads(response.read())["queryStringParameters"] == {"from": "urllib"}
    curl = shutil.which("curl")
    # The Lambda tests' shell bootstrap needs curl too; .ci/run installs it.
    assert curl is not None, "curl is not installed: apt-get install curl"
    out = subprocess.run(
        [curl, "-sS", "-i", f"{aws.endpoint}{through(api_id, '/ping?from=curl')}"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout.decode()
    head, _, body = out.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    assert "apigw-requestid:" in head.lower()
    assert json.loads(body)["headers"]["user-agent"].startswith("curl/")


def test_requests_write_api_gateway_metrics(aws):
    name, alias = aws.function(
        {
            "app.py": (
                "def handler(event, context):\n"
                "    code = int(event['rawPath'].strip('/') or 200)\n"
                "    return {'statusCode': code, 'body': str(code)}\n"
            )
        }
    )
    api_id = aws.api(name, alias)
    started = datetime.now(UTC) - timedelta(minutes=1)
    codes = [200] * 6 + [404] * 3 + [503] * 2
    for code in codes:
        assert call(aws, "GET", through(api_id, f"/{code}"))[0] == code
    dims = [{"Name": "ApiId", "Value": api_id}, {"Name": "Stage", "Value": "$default"}]

    def query(qid: str, metric: str, stat: str, dimensions=dims) -> dict:
        return {
            "Id": qid,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/ApiGateway",
                    "MetricName": metric,
                    "Dimensions": dimensions,
                },
                "Period": 3600,
                "Stat": stat,
            },
        }

    resp = aws.cloudwatch.get_metric_data(
        MetricDataQueries=[
            query("count", "Count", "Sum"),
            query("c4", "4xx", "Sum"),
            query("c5", "5xx", "Sum"),
            query("lat", "Latency", "p95"),
            query("integ", "IntegrationLatency", "Average"),
            query("byapi", "Count", "Sum", dims[:1]),
            query("bytes", "DataProcessed", "Sum"),
        ],
        StartTime=started,
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
    )
    got = {r["Id"]: sum(r["Values"]) for r in resp["MetricDataResults"]}
    assert (got["count"], got["c4"], got["c5"], got["byapi"]) == (11, 3, 2, 11)
    assert 0 < got["integ"] <= got["lat"]
    assert got["bytes"] == sum(len(str(code)) for code in codes)

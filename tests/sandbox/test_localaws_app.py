"""The local AWS as a whole: moto still answers what no extension takes, and an HTTP API
reports an endpoint that answers from here."""

from __future__ import annotations

import pytest

from tests.sandbox.test_lambda_common import make_client


@pytest.mark.integration
def test_moto_answers_what_no_extension_takes(local_aws_server):
    s3 = make_client(local_aws_server, "s3")
    s3.create_bucket(Bucket="localaws-app-test")
    s3.put_object(Bucket="localaws-app-test", Key="k", Body=b"v")
    assert s3.get_object(Bucket="localaws-app-test", Key="k")["Body"].read() == b"v"


@pytest.mark.integration
def test_http_api_endpoint_is_the_local_address(local_aws_server):
    apigw = make_client(local_aws_server, "apigatewayv2")
    created = apigw.create_api(Name="endpoint-test", ProtocolType="HTTP")
    expected = f"{local_aws_server}/_aws/execute-api/{created['ApiId']}"
    assert created["ApiEndpoint"] == expected
    assert apigw.get_api(ApiId=created["ApiId"])["ApiEndpoint"] == expected


@pytest.mark.integration
def test_health_route_answers_for_start_up_checks(local_aws_server):
    import json
    import urllib.request

    url = f"{local_aws_server}/_localaws/health"
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback http
        assert json.loads(resp.read()) == {"status": "running"}

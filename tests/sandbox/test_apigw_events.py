"""The payload-format builders and answer mappers on their own (no server)."""

from __future__ import annotations

import base64
import json

import pytest

from opsconsole.sandbox.localaws.apigw_events import (
    ApiRequest,
    Malformed,
    Match,
    answer_v1,
    answer_v2,
    encode_body,
    event_v1,
    event_v2,
)


def _request(**overrides) -> ApiRequest:
    values = {
        "method": "GET",
        "raw_path": "/prod/a%20b/7",
        "path_v1": "/prod/a%20b/7",
        "raw_query": "",
        "headers": [("host", "x"), ("user-agent", "ua")],
        "body": b"",
        "source_ip": "10.0.0.1",
        "request_id": "rid",
        "domain_name": "abc.execute-api.us-east-1.amazonaws.com",
        "domain_prefix": "abc",
        "time_epoch_ms": 1_700_000_000_123,
    }
    return ApiRequest(**{**values, **overrides})


def _event(builder, request=None, match=None, **kwargs):
    return builder(
        request or _request(),
        match or Match("GET /{name}/{id}", {"name": "a b", "id": "7"}),
        account="123456789012",
        api_id="abc",
        stage="prod",
        stage_variables=kwargs.get("stage_variables", {}),
    )


def test_v2_leaves_out_what_the_request_did_not_have():
    event = _event(event_v2)
    assert "cookies" not in event
    assert "queryStringParameters" not in event
    assert "body" not in event
    assert "stageVariables" not in event
    assert event["requestContext"]["http"]["path"] == "/prod/a b/7"
    assert event["requestContext"]["time"] == "14/Nov/2023:22:13:20 +0000"


def test_v1_has_nulls_where_v2_has_nothing_and_stage_variables_when_set():
    event = _event(event_v1, stage_variables={"env": "dev"})
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["body"] is None
    assert event["stageVariables"] == {"env": "dev"}
    assert event["resource"] == "/{name}/{id}"
    assert event["requestContext"]["requestTimeEpoch"] == 1_700_000_000_123
    default = _event(event_v1, match=Match("$default", {}))
    assert (default["resource"], default["pathParameters"]) == ("$default", None)


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/json", b'{"a":1}', ('{"a":1}', False)),
        ("text/html; charset=utf-8", "é".encode(), ("é", False)),
        ("application/vnd.api+json", b"{}", ("{}", False)),
        ("application/octet-stream", b"\x00\x01", ("AAE=", True)),
        ("application/x-www-form-urlencoded", b"a=1", ("YT0x", True)),
        ("text/plain", b"\xff\xfe", ("//4=", True)),  # not UTF-8: base64 after all
        ("", b"", (None, False)),
    ],
)
def test_bodies_are_text_or_base64(content_type, body, expected):
    assert encode_body(body, content_type) == expected


def test_v2_answers():
    assert answer_v2(b'"hello"') == (200, [("content-type", "application/json")], b"hello")
    assert answer_v2(b"[1, 2]") == (200, [("content-type", "application/json")], b"[1, 2]")
    status, headers, body = answer_v2(
        json.dumps(
            {
                "statusCode": 302,
                "headers": {"Location": "/x", "Content-Length": "999", "X-N": 5},
                "cookies": ["a=1"],
                "body": base64.b64encode(b"\x00").decode(),
                "isBase64Encoded": True,
            }
        ).encode()
    )
    assert (status, body) == (302, b"\x00")
    assert headers == [("Location", "/x"), ("X-N", "5"), ("set-cookie", "a=1")]
    for bad in (b"not json", b'{"statusCode": "abc"}', b'{"statusCode": 200, "body": {}}'):
        with pytest.raises(Malformed):
            answer_v2(bad)


def test_v1_answers_need_their_shape():
    status, headers, body = answer_v1(
        json.dumps(
            {
                "statusCode": 200,
                "headers": {"X-A": "single", "X-B": "kept"},
                "multiValueHeaders": {"x-a": ["m1", "m2"]},
                "body": "ok",
            }
        ).encode()
    )
    assert (status, body) == (200, b"ok")
    assert headers == [("X-B", "kept"), ("x-a", "m1"), ("x-a", "m2")]
    for bad in (
        b'"text"',
        b'{"body": "no status"}',
        b'{"statusCode": 200, "multiValueHeaders": {"a": "b"}}',
    ):
        with pytest.raises(Malformed):
            answer_v1(bad)

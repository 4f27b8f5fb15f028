"""A tenant's alarm topic on the local AWS delivers to an HTTPS subscriber as SNS does: a
SubscriptionConfirmation first (nothing else until it is confirmed), then, once the
SubscribeURL has been visited, the CloudWatch alarm notification when the alarm changes
state. The subscriber is a plain http.server on 127.0.0.1 subscribed as https:// (the
local SNS speaks plain HTTP to loopback receivers: sns_delivery's docstring says why)."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from opsconsole.aws.clients import client
from opsconsole.jobs.models import JobStatus
from tenants.models import AlarmSubscription
from tenants.notifications import subscription_status
from tests.tenants.conftest import make_tenant, run_job

pytestmark = pytest.mark.integration

SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}


class Receiver:
    """An HTTP endpoint in a thread that keeps every POST it gets."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}/alarms"

    def wait_for(self, kind: str, match=lambda body: True, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for headers, body in self.received:
                if body.get("Type") == kind and match(body):
                    return headers, body
            time.sleep(0.1)
        raise AssertionError(f"no {kind} within {timeout} s; got {self.received}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def assert_signed_by_sns(body: dict) -> None:
    """The signature verifies with the certificate at SigningCertURL (SNS's v1: SHA1)."""
    text = "".join(f"{k}\n{body[k]}\n" for k in SIGNED[body["Type"]] if k in body)
    cert = x509.load_pem_x509_certificate(requests.get(body["SigningCertURL"], timeout=5).content)
    assert body["SignatureVersion"] == "1"
    cert.public_key().verify(
        base64.b64decode(body["Signature"]),
        text.encode(),
        padding.PKCS1v15(),
        hashes.SHA1(),  # noqa: S303 - SNS v1
    )


def test_https_subscriber_confirms_then_gets_the_alarm(live_aws, db, receiver):
    tenant = make_tenant("hc-live", alarm_topic="tenant")
    row = AlarmSubscription.objects.create(tenant=tenant, protocol="https", endpoint=receiver.url)
    assert run_job("tenant_notifications", tenant).status == JobStatus.SUCCEEDED
    row.refresh_from_db()
    assert subscription_status(row) == "pending confirmation"

    headers, confirmation = receiver.wait_for("SubscriptionConfirmation")
    topic = confirmation["TopicArn"]
    assert topic.endswith(":opsconsole-hc-live-alarms")
    assert headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
    assert headers["x-amz-sns-topic-arn"] == topic
    assert confirmation["Token"] and confirmation["SubscribeURL"].startswith(live_aws)
    assert_signed_by_sns(confirmation)

    # Unconfirmed: an alarm's change of state reaches nobody.
    cw = client("cloudwatch")
    name = "opsconsole-hc-live-errors"
    cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="test: before confirming")
    time.sleep(1.0)
    assert [b["Type"] for _, b in receiver.received] == ["SubscriptionConfirmation"]

    visited = requests.get(confirmation["SubscribeURL"], timeout=5)
    assert visited.status_code == 200 and "<SubscriptionArn>arn:aws:sns:" in visited.text
    assert run_job("tenant_notifications", tenant).status == JobStatus.SUCCEEDED
    row.refresh_from_db()
    assert subscription_status(row) == "confirmed"

    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test: errors")
    headers, note = receiver.wait_for(
        "Notification", lambda b: json.loads(b["Message"])["NewStateValue"] == "ALARM"
    )
    assert headers["x-amz-sns-message-type"] == "Notification"
    assert headers["x-amz-sns-subscription-arn"] == row.subscription_arn
    assert note["TopicArn"] == topic
    assert note["Subject"] == f'ALARM: "{name}" in US East (N. Virginia)'
    assert note["UnsubscribeURL"].startswith(live_aws) and note["MessageId"]
    assert_signed_by_sns(note)
    message = json.loads(note["Message"])
    assert message["AlarmName"] == name and message["OldStateValue"] == "OK"
    assert message["NewStateReason"] == "test: errors"
    assert message["Region"] == "US East (N. Virginia)" and message["StateChangeTime"]
    assert message["AlarmActions"] == [topic]
    trigger = message["Trigger"]
    assert (trigger["MetricName"], trigger["Namespace"], trigger["Threshold"]) == (
        "Errors",
        "AWS/Lambda",
        5.0,
    )

    # The UnsubscribeURL works as SNS's does.
    assert requests.get(note["UnsubscribeURL"], timeout=5).status_code == 200
    assert client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []

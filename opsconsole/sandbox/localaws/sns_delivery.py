"""SNS HTTP(S) subscriptions as SNS runs them: confirmed first, then delivered.

moto's server accepts an http/https (or email) subscription as confirmed at once, never
sends a SubscriptionConfirmation, treats ConfirmSubscription as a no-op, and POSTs each
notification synchronously inside Publish (a slow or refusing endpoint fails the
publisher's call) with an UnsubscribeURL and SigningCertURL pointing at AWS. Added here:

- Subscribe (http, https, email, email-json) leaves the subscription pending
  (``PendingConfirmation`` "true") and, for http/https, POSTs the endpoint a
  ``SubscriptionConfirmation`` whose ``SubscribeURL`` is this server's; visiting it (or
  calling ConfirmSubscription with the token) confirms. Nobody mails an email
  subscription's link: the log line gives it, so a developer can confirm by hand.
- Publish delivers to confirmed http/https subscriptions only, in the background (a
  daemon thread per delivery; Publish answers at once), with SNS's envelope and headers
  (``x-amz-sns-message-type`` and the rest), signed as SNS signs (SignatureVersion 1,
  SHA1, or the topic's 2, SHA256) with a key whose certificate this server serves at the
  ``SigningCertURL``; 5xx, 429 or an unreachable endpoint are retried
  (SNS's default HTTP policy: 3 retries, 20 s apart; ``LOCALAWS_SNS_RETRY_S`` shortens it).
- ``UnsubscribeURL`` works when visited.

TLS: a receiver on this machine (127.0.0.1, ::1, localhost) subscribed as ``https://``
is sent plain HTTP to the same host, port and path. SNS itself never downgrades, but a
local receiver (a test's http.server, a developer's webhook) has no certificate any CA
vouches for and the sandbox has no CA of its own to issue one; every other https://
endpoint gets real, verified TLS.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import threading
import time
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from moto.sns import models
from werkzeug.wrappers import Request, Response

from opsconsole.sandbox.localaws.config import LocalAwsConfig
from opsconsole.sandbox.localaws.moto_state import backend

logger = logging.getLogger(__name__)

CONFIRMED_PROTOCOLS = ("http", "https", "email", "email-json")
RETRIES = 3
TIMEOUT_S = 15.0
CERT_NAME = "SimpleNotificationService-localaws.pem"
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_XMLNS = "http://sns.amazonaws.com/doc/2010-03-31/"

_public = "http://127.0.0.1:4566"
_tokens: dict[str, str] = {}  # token -> subscription ARN
_lock = threading.Lock()
_installed = False
_key: rsa.RSAPrivateKey | None = None
_cert_pem = b""


def install(config: LocalAwsConfig) -> None:
    global _installed, _public
    _public = config.public_endpoint
    if _installed:
        return
    _installed = True
    _make_key()
    original_subscribe = models.SNSBackend.subscribe
    original_publish = models.Subscription.publish

    def subscribe(self: Any, topic_arn: str, endpoint: str, protocol: str) -> Any:
        existing = self._find_subscription(topic_arn, endpoint, protocol)
        subscription = original_subscribe(self, topic_arn, endpoint, protocol)
        if existing is None and protocol in CONFIRMED_PROTOCOLS:
            _pending(subscription)
        return subscription

    def publish(self: Any, message: str, message_id: str, **kwargs: Any) -> None:
        if self.protocol not in ("http", "https"):
            return original_publish(self, message, message_id, **kwargs)
        if is_pending(self):
            return None  # SNS delivers nothing to an unconfirmed endpoint
        if kwargs.get("message_structure") == "json":
            message = self._parse_message_structure(message, self.protocol)
        envelope = notification(self, message, message_id, kwargs.get("subject"))
        _send_later(self, envelope)
        return None

    models.SNSBackend.subscribe = subscribe  # type: ignore[method-assign]
    models.Subscription.publish = publish  # type: ignore[method-assign]


def route(request: Request) -> Response | None:
    if request.method == "GET" and request.path == f"/{CERT_NAME}":
        return Response(_cert_pem, content_type="application/x-pem-file")
    values = {k: v for k, v in request.args.items()}
    if "Action" not in values and request.mimetype == "application/x-www-form-urlencoded":
        # The raw body, not request.form: parsing the form would use up the stream moto
        # reads next.
        form = urllib.parse.parse_qs(request.get_data(cache=True).decode())
        values = {k: v[0] for k, v in form.items()}
    action = values.get("Action")
    if action == "ConfirmSubscription":
        return _confirm(values.get("TopicArn", ""), values.get("Token", ""))
    if action == "Unsubscribe" and request.method == "GET":
        # The UnsubscribeURL of a delivered message (signed Unsubscribe calls are POSTs
        # and stay moto's).
        return _unsubscribe_url(values.get("SubscriptionArn", ""))
    return None


# --- subscriptions -----------------------------------------------------------------------


def is_pending(subscription: Any) -> bool:
    return str(subscription.attributes.get("PendingConfirmation", "false")).lower() == "true"


def _pending(subscription: Any) -> None:
    token = secrets.token_hex(64)
    with _lock:
        _tokens[token] = subscription.arn
    subscription.attributes["PendingConfirmation"] = "true"
    subscription.attributes["ConfirmationWasAuthenticated"] = "false"
    subscribe_url = f"{_public}/?" + urlencode(
        {"Action": "ConfirmSubscription", "TopicArn": subscription.topic.arn, "Token": token}
    )
    if subscription.protocol in ("http", "https"):
        _send_later(subscription, confirmation(subscription, token, subscribe_url))
    else:
        logger.info(
            "%s subscription of %s to %s is pending: nothing mails it here; confirm at %s",
            subscription.protocol,
            subscription.endpoint,
            subscription.topic.arn,
            subscribe_url,
        )


def _find(arn: str) -> Any:
    parts = arn.split(":")
    if len(parts) < 7:
        return None
    return backend("sns", parts[3]).subscriptions.get(arn)


def _xml(action: str, result: str) -> Response:
    body = (
        f'<{action}Response xmlns="{_XMLNS}"><{action}Result>{result}</{action}Result>'
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )
    return Response(body, content_type="text/xml")


def _error(code: str, message: str, status: int) -> Response:
    body = (
        f'<ErrorResponse xmlns="{_XMLNS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
        "</ErrorResponse>"
    )
    return Response(body, status=status, content_type="text/xml")


def _confirm(topic_arn: str, token: str) -> Response:
    with _lock:
        arn = _tokens.get(token)
    subscription = _find(arn) if arn else None
    if subscription is None or subscription.topic.arn != topic_arn:
        return _error("InvalidParameter", "Invalid token", 400)
    subscription.attributes["PendingConfirmation"] = "false"
    subscription.attributes["ConfirmationWasAuthenticated"] = "false"
    subscription.confirmed = True
    logger.info("subscription %s (%s) confirmed", arn, subscription.endpoint)
    return _xml("ConfirmSubscription", f"<SubscriptionArn>{arn}</SubscriptionArn>")


def _unsubscribe_url(arn: str) -> Response:
    subscription = _find(arn)
    if subscription is None:
        return _error("NotFound", "Subscription does not exist", 404)
    subscription.topic.sns_backend.unsubscribe(arn)
    return _xml("Unsubscribe", "")


# --- messages ----------------------------------------------------------------------------


def _make_key() -> None:
    global _key, _cert_pem
    _key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .sign(_key, hashes.SHA256())
    )
    _cert_pem = cert.public_bytes(serialization.Encoding.PEM)


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# The fields SNS signs, in its order, by message type (absent ones are skipped).
_SIGNED = {
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


def sign(envelope: dict[str, Any], version: str) -> dict[str, Any]:
    text = "".join(
        f"{field}\n{envelope[field]}\n"
        for field in _SIGNED[envelope["Type"]]
        if envelope.get(field) is not None
    )
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()  # noqa: S303 - SNS's v1
    assert _key is not None
    signature = _key.sign(text.encode(), padding.PKCS1v15(), algorithm)
    envelope["SignatureVersion"] = version
    envelope["Signature"] = base64.b64encode(signature).decode()
    envelope["SigningCertURL"] = f"{_public}/{CERT_NAME}"
    return envelope


def _version(subscription: Any) -> str:
    return "2" if str(getattr(subscription.topic, "signature_version", "1")) == "2" else "1"


def confirmation(subscription: Any, token: str, subscribe_url: str) -> dict[str, Any]:
    topic = subscription.topic.arn
    envelope = {
        "Type": "SubscriptionConfirmation",
        "MessageId": str(uuid.uuid4()),
        "Token": token,
        "TopicArn": topic,
        "Message": (
            f"You have chosen to subscribe to the topic {topic}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message."
        ),
        "SubscribeURL": subscribe_url,
        "Timestamp": _timestamp(),
    }
    return sign(envelope, _version(subscription))


def notification(
    subscription: Any, message: str, message_id: str, subject: str | None
) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": subscription.topic.arn,
        "Message": message,
        "Timestamp": _timestamp(),
        "UnsubscribeURL": f"{_public}/?"
        + urlencode({"Action": "Unsubscribe", "SubscriptionArn": subscription.arn}),
    }
    if subject:
        envelope["Subject"] = subject
    return sign(envelope, _version(subscription))


# --- delivery ----------------------------------------------------------------------------


def target_url(endpoint: str) -> tuple[str, bool]:
    """Where a POST goes and whether to verify TLS: a loopback https:// receiver gets
    plain HTTP (see the module's docstring)."""
    parts = urlsplit(endpoint)
    if parts.scheme == "https" and (parts.hostname or "") in _LOOPBACK:
        return urlunsplit(("http", *parts[1:])), False
    return endpoint, parts.scheme == "https"


def _headers(subscription: Any, envelope: dict[str, Any]) -> dict[str, str]:
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "User-Agent": "Amazon Simple Notification Service Agent",
        "x-amz-sns-message-type": envelope["Type"],
        "x-amz-sns-message-id": envelope["MessageId"],
        "x-amz-sns-topic-arn": envelope["TopicArn"],
    }
    if envelope["Type"] == "Notification":
        headers["x-amz-sns-subscription-arn"] = subscription.arn
    return headers


def _send_later(subscription: Any, envelope: dict[str, Any]) -> None:
    threading.Thread(
        target=deliver,
        args=(subscription.endpoint, _headers(subscription, envelope), envelope),
        name="localaws-sns-delivery",
        daemon=True,
    ).start()


def deliver(endpoint: str, headers: dict[str, str], envelope: dict[str, Any]) -> bool:
    url, verify = target_url(endpoint)
    delay = float(os.environ.get("LOCALAWS_SNS_RETRY_S", "20"))
    body = json.dumps(envelope)
    for attempt in range(RETRIES + 1):
        try:
            resp = requests.post(url, data=body, headers=headers, timeout=TIMEOUT_S, verify=verify)
        except requests.RequestException as exc:
            why = str(exc)
        else:
            if resp.status_code < 500 and resp.status_code != 429:
                if resp.status_code >= 300:
                    logger.warning("SNS %s to %s: %s", envelope["Type"], endpoint, resp.status_code)
                return resp.status_code < 300
            why = f"HTTP {resp.status_code}"
        logger.info("SNS %s to %s failed (%s), try %d", envelope["Type"], endpoint, why, attempt)
        if attempt < RETRIES:
            time.sleep(delay)
    logger.warning("SNS %s to %s dropped after %d retries", envelope["Type"], endpoint, RETRIES)
    return False

"""Outgoing webhooks: endpoints as admins manage them, events as the domain emits them,
and the signed, retried deliveries between the two.

The signing secret. A receiver checks an HMAC, so the console must hold the secret itself
(a hash cannot sign). It lives in Secrets Manager, as every other secret of the console
does; an Endpoint row keeps only the secret's ARN and a short hint. The admin sees the
value once, when the endpoint is created, and gives it to the receiver; each send fetches
it through opsconsole.aws.secrets, cached in process for WEBHOOK_SECRET_CACHE_S so a burst
of deliveries costs one GetSecretValue, not one per attempt. A database dump therefore
leaks no signing secret, and replacing one is a new endpoint.

Deliveries are durable jobs. ``emit`` writes one Delivery row per endpoint that wants the
event, inside the caller's transaction (a state change rolled back sends nothing), and
sends each one's task after the commit. An attempt claims its row by a conditional UPDATE
that also moves ``next_attempt_at`` a lease ahead, so two workers never send one delivery
at once and a worker that dies mid-send leaves a row the sweep picks up once the lease is
over. A failed attempt is tried again with exponential backoff and jitter; after
MAX_ATTEMPTS it is failed (an admin can still "retry now").
"""

from __future__ import annotations

import json
import logging
import random
import secrets as pysecrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from opsconsole.audit.services import audit_record
from opsconsole.aws import secrets
from opsconsole.aws.errors import AwsError
from opsconsole.webhooks import signing, transport
from opsconsole.webhooks.events import EVENTS, TEST
from opsconsole.webhooks.models import Delivery, DeliveryStatus, Endpoint

logger = logging.getLogger(__name__)

# Seconds before attempt 2, 3, ... (each ±20 %): MAX_ATTEMPTS tries over about 7 hours.
BACKOFF_S = (30, 120, 600, 3600, 21600)
MAX_ATTEMPTS = len(BACKOFF_S) + 1
JITTER = 0.2
# An attempt holds its row this long (well above the send timeout).
LEASE_S = 120
SECRET_PREFIX = "opsconsole/webhooks/"  # noqa: S105 - a name prefix, not a secret
DELIVER_TASK = "opsconsole.webhooks.tasks.webhook_deliver"
SWEEP_BATCH = 500


class EndpointError(ValueError):
    """A change refused, with why (shown to the admin as it is)."""


# --- endpoints -------------------------------------------------------------------------


def clean_url(url: str) -> str:
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise EndpointError(f"{url!r} is not a URL.") from None
    if not host:
        raise EndpointError("Give a full URL, such as https://hooks.example.com/opsconsole.")
    if parts.username or parts.password:
        raise EndpointError("Put no credentials in the URL: receivers check the signature.")
    if parts.scheme == "https":
        return url
    allowed = [h.lower() for h in settings.WEBHOOK_HTTP_HOSTS]
    if parts.scheme == "http" and host in allowed:
        return url
    if parts.scheme == "http":
        where = f" (plain http only for {', '.join(allowed)})" if allowed else ""
        raise EndpointError(f"Use an https:// URL{where}: payloads name your tenants.")
    raise EndpointError("Use an https:// URL.")


def clean_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise EndpointError(f"No such event: {', '.join(unknown)}.")
    if not events:
        raise EndpointError("Choose at least one event.")
    return [e for e in EVENTS if e in events]


def new_signing_secret() -> str:
    return "whsec_" + pysecrets.token_urlsafe(32)


def endpoint_create(
    *, name: str, url: str, events: list[str], active: bool = True, request: HttpRequest
) -> tuple[Endpoint, str]:
    """Create an endpoint and its signing secret; returns both (the secret, this once)."""
    url, events = clean_url(url), clean_events(events)
    secret = new_signing_secret()
    created = secrets.create_secret_json(
        name=f"{SECRET_PREFIX}{pysecrets.token_hex(8)}",
        value={"signing_secret": secret},
        description=f"opsconsole webhook signing secret for {name[:100]}",
        tags={"ManagedBy": "opsconsole", "Purpose": "webhook-signing"},
    )
    try:
        with transaction.atomic():
            endpoint = Endpoint.objects.create(
                name=name,
                url=url,
                events=events,
                active=active,
                secret_arn=created["ARN"],
                secret_hint=secret[:10],
                created_by=request.user if request.user.is_authenticated else None,
            )
            audit_record(
                request=request, action="webhook.create", obj=endpoint, url=url, events=events
            )
    except Exception:
        _forget_secret(created["ARN"])
        raise
    return endpoint, secret


def endpoint_update(
    *,
    endpoint: Endpoint,
    name: str,
    url: str,
    events: list[str],
    active: bool,
    request: HttpRequest,
) -> Endpoint:
    fields = ("name", "url", "events", "active")
    before = {f: getattr(endpoint, f) for f in fields}
    endpoint.name, endpoint.url = name, clean_url(url)
    endpoint.events, endpoint.active = clean_events(events), active
    after = {f: getattr(endpoint, f) for f in fields}
    with transaction.atomic():
        endpoint.save(update_fields=[*fields, "updated_at"])
        audit_record(
            request=request,
            action="webhook.update",
            obj=endpoint,
            before={k: v for k, v in before.items() if after[k] != v},
            after={k: v for k, v in after.items() if before[k] != v},
        )
    return endpoint


def endpoint_delete(*, endpoint: Endpoint, request: HttpRequest) -> None:
    """Delete the endpoint with its delivery log; its secret is scheduled for deletion."""
    arn = endpoint.secret_arn
    with transaction.atomic():
        audit_record(request=request, action="webhook.delete", obj=endpoint, url=endpoint.url)
        endpoint.delete()
        transaction.on_commit(lambda: _forget_secret(arn))
    _secret_cache.pop(arn, None)


def _forget_secret(arn: str) -> None:
    try:
        secrets.delete_secret(
            secret_id=arn, recovery_window_days=settings.WEBHOOK_SECRET_RECOVERY_DAYS
        )
    except AwsError as exc:
        # An orphaned secret costs cents and is tagged Purpose=webhook-signing.
        logger.warning("Could not schedule deletion of webhook secret %s: %s", arn, exc)


# --- the signing secret, fetched at send time ------------------------------------------

_secret_cache: dict[str, tuple[str, float]] = {}
_secret_lock = threading.Lock()


def signing_secret(arn: str) -> str:
    now = time.monotonic()
    with _secret_lock:
        cached = _secret_cache.get(arn)
        if cached and cached[1] > now:
            return cached[0]
    value = secrets.get_secret_json(secret_id=arn)["signing_secret"]
    with _secret_lock:
        _secret_cache[arn] = (value, now + settings.WEBHOOK_SECRET_CACHE_S)
    return value


# --- emitting --------------------------------------------------------------------------


def emit(event: str, payload: dict[str, Any]) -> list[Delivery]:
    """Queue ``event`` for every active endpoint that wants it, in the caller's
    transaction; the sends follow the commit. Cheap when nobody listens: one query."""
    if event not in EVENTS:
        raise ValueError(f"Unknown webhook event {event!r}")
    endpoints = list(Endpoint.objects.filter(active=True, events__contains=[event]))
    if not endpoints:
        return []
    return _queue(event, payload, endpoints)


def _queue(event: str, payload: dict[str, Any], endpoints: list[Endpoint]) -> list[Delivery]:
    now = timezone.now()
    with transaction.atomic():
        rows = Delivery.objects.bulk_create(
            Delivery(endpoint=e, event=event, payload=payload, next_attempt_at=now)
            for e in endpoints
        )
        ids = [row.pk for row in rows]
        transaction.on_commit(lambda: _send(ids))
    return rows


def _send(ids: list[int], *, countdown: int = 0) -> None:
    # By name: services never import the task module (it imports this one).
    for delivery_id in ids:
        try:
            current_app.send_task(DELIVER_TASK, args=[delivery_id], countdown=countdown or None)
        except Exception:  # noqa: BLE001 - the broker is down: the sweep sends it later
            logger.warning("Could not send webhook delivery %s; the sweep will", delivery_id)


def send_test(*, endpoint: Endpoint, request: HttpRequest) -> Delivery:
    if not endpoint.active:
        raise EndpointError(f"{endpoint.name} is inactive: activate it to send anything.")
    payload = {"endpoint": endpoint.pk, "message": "A test event from opsconsole."}
    with transaction.atomic():
        [delivery] = _queue(TEST, payload, [endpoint])
        audit_record(request=request, action="webhook.test", obj=endpoint, delivery=delivery.pk)
    return delivery


def retry_now(*, delivery: Delivery, request: HttpRequest) -> bool:
    """Send again now: a pending delivery sooner, a failed one once more."""
    if delivery.status == DeliveryStatus.DELIVERED:
        return False
    if not delivery.endpoint.active:
        raise EndpointError(f"{delivery.endpoint.name} is inactive: activate it first.")
    with transaction.atomic():
        changed = Delivery.objects.filter(
            pk=delivery.pk, status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED]
        ).update(status=DeliveryStatus.PENDING, next_attempt_at=timezone.now())
        if changed:
            audit_record(
                request=request,
                action="webhook.retry",
                obj=delivery.endpoint,
                delivery=delivery.pk,
            )
            transaction.on_commit(lambda: _send([delivery.pk]))
    return bool(changed)


# --- sending ---------------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # delivered, retry, failed, or skipped (not due, or another worker has it)
    retry_in: int | None = None


def backoff_s(attempts: int) -> int:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    base = BACKOFF_S[min(attempts, len(BACKOFF_S)) - 1]
    return max(1, round(base * random.uniform(1 - JITTER, 1 + JITTER)))


def body_of(delivery: Delivery) -> bytes:
    """The signed body: the same bytes on every attempt."""
    document = {
        "id": delivery.pk,
        "event": delivery.event,
        "created_at": delivery.created_at.isoformat(timespec="seconds"),
        "data": delivery.payload,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def delivery_attempt(delivery_id: int) -> Outcome:
    """Claim the delivery if it is due, send it once, record what happened."""
    now = timezone.now()
    claimed = Delivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(
        next_attempt_at=now + timedelta(seconds=LEASE_S),
        attempts=F("attempts") + 1,
        last_attempt_at=now,
    )
    if not claimed:
        return Outcome("skipped")
    delivery = Delivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    try:
        if not endpoint.active:
            raise transport.SendError("the endpoint is inactive")
        body = body_of(delivery)
        try:
            secret = signing_secret(endpoint.secret_arn)
        except (AwsError, KeyError) as exc:
            raise transport.SendError(f"signing secret unavailable: {exc}") from None
        headers = {
            signing.SIGNATURE_HEADER: signing.signature_header(secret, body),
            signing.EVENT_HEADER: delivery.event,
            signing.DELIVERY_HEADER: str(delivery.pk),
        }
        answer = transport.post(endpoint.url, body, headers, timeout_s=settings.WEBHOOK_TIMEOUT_S)
    except transport.SendError as exc:
        return _failed_attempt(delivery, str(exc), exc.status, final=not endpoint.active)
    Delivery.objects.filter(pk=delivery_id).update(
        status=DeliveryStatus.DELIVERED,
        last_status_code=answer.status,
        last_error="",
        next_attempt_at=None,
        delivered_at=timezone.now(),
    )
    logger.info("Webhook %s #%s delivered to %s", delivery.event, delivery_id, endpoint.name)
    return Outcome("delivered")


def _failed_attempt(delivery: Delivery, error: str, status: int | None, *, final: bool):
    limit = Delivery._meta.get_field("last_error").max_length
    fields: dict[str, Any] = {"last_status_code": status, "last_error": error[:limit]}
    if final or delivery.attempts >= MAX_ATTEMPTS:
        fields.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
        outcome = Outcome("failed")
    else:
        wait = backoff_s(delivery.attempts)
        fields["next_attempt_at"] = timezone.now() + timedelta(seconds=wait)
        outcome = Outcome("retry", retry_in=wait)
    Delivery.objects.filter(pk=delivery.pk).update(**fields)
    logger.info(
        "Webhook %s #%s attempt %s failed: %s",
        delivery.event,
        delivery.pk,
        delivery.attempts,
        error,
    )
    return outcome


def deliveries_send_due() -> int:
    """The sweep: send again what is overdue (a lost message, a dead worker's lease, a
    retry too far ahead for a countdown). Overdue by a grace, so a task on its way is not
    sent twice (twice would be harmless: the claim lets one through)."""
    overdue = timezone.now() - timedelta(seconds=settings.WEBHOOK_SWEEP_GRACE_S)
    ids = list(
        Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=overdue)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    _send(ids)
    return len(ids)


def deliveries_prune() -> int:
    """Delivered and failed deliveries older than WEBHOOK_DELIVERY_KEEP_DAYS go: the log
    is for finding out what happened lately, not an archive."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_DELIVERY_KEEP_DAYS)
    deleted, _ = Delivery.objects.filter(
        status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.FAILED], created_at__lt=cutoff
    ).delete()
    return deleted

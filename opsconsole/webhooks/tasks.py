"""Thin Celery tasks: claim and send in the service; scheduling the retry is all they add."""

from celery import shared_task
from django.conf import settings

from opsconsole.webhooks import services


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True, soft_time_limit=60)
def webhook_deliver(delivery_id: int) -> str:
    outcome = services.delivery_attempt(delivery_id)
    # A countdown longer than the broker's visibility timeout would be delivered twice;
    # the sweep sends the far retries instead.
    if outcome.retry_in is not None and outcome.retry_in <= settings.WEBHOOK_COUNTDOWN_MAX_S:
        webhook_deliver.apply_async(args=[delivery_id], countdown=outcome.retry_in)
    return outcome.status


@shared_task(ignore_result=True)
def webhooks_send_due() -> int:
    services.deliveries_prune()
    return services.deliveries_send_due()

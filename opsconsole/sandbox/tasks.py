"""The sandbox's beat tasks (registered in settings only when OPSCONSOLE_SANDBOX is on)."""

import logging

from celery import shared_task
from django.conf import settings

from opsconsole.sandbox.traffic import send_demo_traffic

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def sandbox_demo_traffic() -> dict:
    """Beat, every SANDBOX_DEMO_TRAFFIC_SECONDS: a round of demo traffic to each active
    tenant's HTTP API (opsconsole/sandbox/traffic.py)."""
    if not settings.SANDBOX:
        logger.error("sandbox_demo_traffic refused: this is not the sandbox")
        return {"skipped": "not the sandbox"}
    return send_demo_traffic()

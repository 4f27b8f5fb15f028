import logging

from celery import shared_task
from django.conf import settings

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def sandbox_simulate_metrics() -> dict:
    """Beat, once a minute in the sandbox: simulated CloudWatch metrics and log lines."""
    if not settings.SANDBOX:
        logger.error("sandbox_simulate_metrics refused: this is not the sandbox")
        return {"skipped": "not the sandbox"}
    from opsconsole.sandbox.metrics import simulate_metrics

    return simulate_metrics()


@shared_task(ignore_result=True)
def tenants_check_drift_daily() -> int:
    """Beat, once a day: a drift check job for every live tenant (results on its page)."""
    from tenants.services import tenants_check_drift_all

    return tenants_check_drift_all()

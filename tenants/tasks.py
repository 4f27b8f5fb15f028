import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def tenants_check_drift_daily() -> int:
    """Beat, once a day: a drift check job for every live tenant (results on its page)."""
    from tenants.services import tenants_check_drift_all

    return tenants_check_drift_all()

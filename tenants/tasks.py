import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def tenants_check_drift_daily() -> int:
    """Beat, once a day: a drift check job for every live tenant (results on its page)."""
    from tenants.services import tenants_check_drift_all

    return tenants_check_drift_all()


@shared_task(ignore_result=True)
def health_read_shared_db(region: str, instance: str, account: int | None = None) -> None:
    """One sample of a shared instance's pg_stat_database (asked by a page, or by beat),
    in the cell ``account`` (an AwsAccount pk) when given."""
    from tenants.health.shared_db import shared_db_read

    shared_db_read(region=region, instance=instance, account=account)


@shared_task(ignore_result=True)
def health_read_shared_dbs() -> int:
    """Beat, once a minute: a sample of every shared instance a live tenant uses, so the
    rates on its page come from two samples a minute apart."""
    from tenants.health.shared_db import shared_db_instances

    instances = sorted(shared_db_instances(), key=lambda i: (i[0], i[1], i[2] or 0))
    for region, instance, account in instances:
        health_read_shared_db.delay(region, instance, account)
    return len(instances)


@shared_task(ignore_result=True)
def tenants_secrets_watch() -> int:
    """Beat: a reconcile for every tenant whose secret changed outside the console."""
    from tenants.credentials import secrets_watch

    return len(secrets_watch())


@shared_task(ignore_result=True)
def health_fleet_refresh() -> int:
    """Beat, every HEALTH_FLEET_REFRESH_SECONDS: the fleet page's alarm states for every
    account and region, and the metrics of the tenants someone looked at (the page itself
    never asks AWS). Returns the GetMetricData calls made."""
    from tenants.health.fleet_refresh import fleet_refresh

    return fleet_refresh().metric_calls

"""Thin Celery tasks: load, call the service."""

from celery import shared_task

from deployments import rollouts


@shared_task(acks_late=True, ignore_result=True)
def rollout_advance_task(rollout_id: int) -> dict:
    return rollouts.rollout_advance(rollout_id)


@shared_task(ignore_result=True)
def rollouts_advance_all() -> int:
    return rollouts.rollouts_advance_all()


@shared_task(ignore_result=True)
def schema_read_plan(slug: str) -> None:
    """Read one tenant's schema plan for its page (asked by the page when due)."""
    from deployments.schema_plans import schema_plan_read

    schema_plan_read(slug=slug)

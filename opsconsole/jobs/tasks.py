from celery import shared_task

from opsconsole.jobs import runner, services


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def job_run(job_id: int) -> str:
    """Load the job row and run it; everything else lives in the service."""
    result = runner.job_execute(job_id)
    if result == "busy":
        # Another job holds this subject's lease, or the job is not due yet: look again
        # shortly. The sweep would also pick it up; this is just faster.
        job_run.apply_async(args=[job_id], countdown=5)
    return result


@shared_task(ignore_result=True)
def jobs_requeue_expired() -> dict[str, int]:
    return services.jobs_requeue_expired()

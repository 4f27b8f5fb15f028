from django.conf import settings
from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


FINISHED = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


class Job(models.Model):
    """One piece of async work. Saved before its Celery task is sent; the UI reads this."""

    kind = models.CharField(max_length=64, db_index=True)
    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    # What the job works on, e.g. ("tenant", "acme"). Two jobs with the same lock_key never
    # run at once.
    subject_type = models.CharField(max_length=32, blank=True)
    subject_id = models.CharField(max_length=64, blank=True)
    lock_key = models.CharField(max_length=128, blank=True, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    run_after = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=5)
    lease_owner = models.CharField(max_length=128, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["subject_type", "subject_id", "-created_at"]),
            models.Index(fields=["status", "lease_expires_at"]),
        ]
        constraints = [
            # The lease on a subject, kept by the database: two jobs on one tenant never
            # run at once, whatever the workers believe. A dead worker's job stays
            # "running" until the sweep re-queues it (its lease expired).
            models.UniqueConstraint(
                fields=["lock_key"],
                condition=models.Q(status="running") & ~models.Q(lock_key=""),
                name="job_one_running_per_lock_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.label} #{self.pk}"

    @property
    def label(self) -> str:
        from opsconsole.jobs.registry import kind_label

        return kind_label(self.kind)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class JobStep(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=64)
    label = models.CharField(max_length=128)
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # What the step is doing or waiting for right now ("waiting for RDS (creating)").
    detail = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    # What the step saw or made (identifiers, ARNs); never secret values.
    output = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["job", "position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "position"], name="job_step_position_unique")
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.label} ({self.status})"

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class StepRun(models.Model):
    """One worker's run of one step: who ran it, from when to when, and how it ended.

    A step may run more than once (a worker died, a lease was lost, a user pressed Retry);
    these rows are the evidence that two runs of a step never overlapped. A run whose
    ``ended_at`` stays empty ended with its worker's process (killed, or the machine lost).
    """

    step = models.ForeignKey(JobStep, on_delete=models.CASCADE, related_name="runs")
    owner = models.CharField(max_length=128)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # succeeded / failed / waiting / lease-lost / interrupted (the database went away under
    # it); empty while running, or for good when its worker died.
    outcome = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["step", "started_at"]

    def __str__(self) -> str:
        return f"{self.step} by {self.owner} from {self.started_at}"

"""Registering AWS accounts (cells), checking their baseline, removing them."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest

from opsconsole.audit.services import audit_record
from opsconsole.awsaccounts.jobs import CHECK_KIND, SUBJECT
from opsconsole.awsaccounts.models import AwsAccount, new_external_id
from opsconsole.jobs.models import Job
from opsconsole.jobs.services import job_create


class AccountInUse(Exception):  # noqa: N818 - a refusal, shown as it is
    pass


class AccountCheckRefused(Exception):  # noqa: N818 - a refusal, shown as it is
    pass


def aws_account_register(*, form, request: HttpRequest) -> AwsAccount:
    account = form.save(commit=False)
    account.external_id = account.external_id or new_external_id()
    account.created_by = request.user
    with transaction.atomic():
        account.save()
        audit_record(
            request=request,
            action="aws_account.register",
            obj=account,
            account_id=account.account_id,
            role_arn=account.role_arn,
            regions=account.regions,
        )
    return account


def aws_account_update(*, form, request: HttpRequest) -> AwsAccount:
    account = form.save(commit=False)
    account.external_id = account.external_id or new_external_id()
    with transaction.atomic():
        account.save()
        audit_record(
            request=request,
            action="aws_account.update",
            obj=account,
            changed=sorted(form.changed_data),
        )
    return account


def tenant_counts(account: AwsAccount) -> tuple[int, int]:
    """(tenants in the account, of which offboarded)."""
    counts = account.tenants.aggregate(
        total=Count("pk"), offboarded=Count("pk", filter=Q(status="offboarded"))
    )
    return counts["total"], counts["offboarded"]


def aws_account_delete(*, account: AwsAccount, request: HttpRequest) -> None:
    """Forget the account; refused while any tenant row names it (an offboarded tenant's
    final backups are in that account too)."""
    with transaction.atomic():
        total, offboarded = tenant_counts(account)
        if total:
            gone = (
                f", {offboarded} of them offboarded (their backups are there)" if offboarded else ""
            )
            raise AccountInUse(
                f"{total} tenant{'s' if total != 1 else ''} live in {account.name}{gone}: "
                "it cannot be removed while the console has records there."
            )
        audit_record(request=request, action="aws_account.delete", obj=account)
        account.delete()


def aws_account_check(*, account: AwsAccount, region: str, request: HttpRequest) -> Job:
    """Queue the baseline check of ``account`` in ``region``."""
    if not account.lists_region(region):
        raise AccountCheckRefused(f"{region} is not one of {account.name}'s regions.")
    with transaction.atomic():
        running = (
            Job.objects.select_for_update()
            .filter(kind=CHECK_KIND, subject_type=SUBJECT, subject_id=account.name)
            .filter(status__in=["queued", "running"], params__region=region)
            .first()
        )
        if running is not None:
            return running  # a double submit: one check
        job = job_create(
            kind=CHECK_KIND,
            subject_type=SUBJECT,
            subject_id=account.name,
            params={"region": region},
            created_by=request.user,
            unique=False,
        )
        audit_record(request=request, action="aws_account.check", obj=account, region=region)
    return job


@dataclass
class RegionCheck:
    region: str
    job: Job | None


def last_checks(account: AwsAccount) -> list[RegionCheck]:
    """The newest check of each of the account's regions (None: never checked)."""
    jobs = Job.objects.filter(kind=CHECK_KIND, subject_type=SUBJECT, subject_id=account.name)
    newest: dict[str, Job] = {}
    for job in jobs.prefetch_related("steps"):  # newest first (Job's ordering)
        newest.setdefault(job.params.get("region", ""), job)
    return [RegionCheck(region, newest.get(region)) for region in account.regions]


def missing_items(job: Job | None) -> list[str]:
    """What a finished check found missing, one line per item."""
    if job is None:
        return []
    items = [s.output["missing"] for s in job.steps.all() if (s.output or {}).get("missing")]
    failed = [s.error for s in job.steps.all() if s.error and s.name != "verdict"]
    return items + failed

"""The account a job runs in, and the per-region baseline check of a registered account.

Every job on a tenant runs its steps in the tenant's account (the runner enters the
context registered here), so no step, hook or AWS helper names an account. The check of
an account reuses the console's own baseline checks (opsconsole.core.baseline), in the
account and region checked; a missing item is recorded on its step and the check goes on,
so one run lists everything missing, not only the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opsconsole.aws import clients, sts
from opsconsole.aws.errors import AwsError
from opsconsole.awsaccounts.models import AwsAccount
from opsconsole.core.baseline import CELL_CHECK_STEPS, BaselineMissing
from opsconsole.jobs.registry import register_job_kind, register_subject_context

CHECK_KIND = "aws_account_check"
SUBJECT = "aws_account"


@contextmanager
def _tenant_account(slug: str) -> Iterator[None]:
    # Looked up (one query) at the run's first AWS call; no account: the console's own.
    with clients.aws_account_lazy(lambda: AwsAccount.objects.filter(tenants__slug=slug).first()):
        yield


@contextmanager
def _registered_account(name: str) -> Iterator[None]:
    with clients.aws_account_lazy(lambda: AwsAccount.objects.filter(name=name).first()):
        yield


register_subject_context("tenant", _tenant_account)
register_subject_context(SUBJECT, _registered_account)


def _account(job) -> AwsAccount:
    return AwsAccount.objects.get(name=job.subject_id)


def check_role(job, step) -> dict:
    """AssumeRole with the account's external id, then who AWS says the console is there."""
    account = _account(job)
    region = job.params["region"]
    if not account.lists_region(region):
        raise BaselineMissing(f"{region} is not one of the account's regions.")
    # Asked for each check (not the cached credentials): a trust policy changed since the
    # last call shows now.
    clients.assume_role(clients.as_account_role(account))
    identity = sts.get_caller_identity(region=region)
    if identity["account"] != account.account_id:
        raise BaselineMissing(
            f"The role answered from account {identity['account']}, not {account.account_id}: "
            "the role ARN names another account."
        )
    return identity


def _collecting(fn):
    """A baseline check that records what is missing instead of failing the job."""

    def step(job, step_row) -> dict:
        try:
            return fn(job, step_row)
        except BaselineMissing as exc:
            return {"missing": str(exc)}
        except AwsError as exc:
            if exc.permanent:
                # Access denied on one service is an answer about the account too.
                return {"missing": f"AWS refused the check: {exc}"}
            raise

    return step


def check_verdict(job, step) -> dict:
    """Fails the check when anything above is missing, listing every item."""
    outputs = getattr(job, "step_outputs", {})
    missing = [out["missing"] for out in outputs.values() if out and out.get("missing")]
    if missing:
        region = job.params["region"]
        raise BaselineMissing(f"{len(missing)} missing in {region}: " + " ".join(missing))
    return {"ok": True}


# The console's own checks, after the role: identity is the role's step here.
CHECK_STEPS = [
    ("role", "Assume the role (AssumeRole with the external id)", check_role),
    *[(name, label, _collecting(fn)) for name, label, fn in CELL_CHECK_STEPS[1:]],
    ("verdict", "Everything the console needs is there", check_verdict),
]

register_job_kind(CHECK_KIND, label="Check AWS account baseline", steps=CHECK_STEPS)

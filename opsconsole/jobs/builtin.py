"""Job kinds that belong to the platform itself (apps register their own)."""

from opsconsole.core.baseline import ACCOUNT_CHECK_STEPS
from opsconsole.jobs.registry import register_job_kind

register_job_kind("account_check", label="Check AWS account", steps=ACCOUNT_CHECK_STEPS)

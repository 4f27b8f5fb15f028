"""Onboard a tenant from a script, through the onboarding form's validation and plan:
``manage.py tenant_onboard acme "Acme Corp" --set isolation=dedicated --env LOG_LEVEL=info
--user admin --wait``. ``--plan`` prints the plan and creates nothing."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.test import RequestFactory

from opsconsole.accounts.models import Role, User
from opsconsole.jobs.models import Job, JobStatus
from tenants import services
from tenants.onboarding import OnboardingInputError, onboard_form, onboarding_plan


def _pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise CommandError(f"{what}: {item!r} is not NAME=value.")
        pairs[name.strip()] = value
    return pairs


class Command(BaseCommand):
    help = "Onboard a tenant (the onboarding form's checks); --wait follows its job."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("name")
        parser.add_argument("--user", required=True, help="The admin it acts as (audit).")
        parser.add_argument(
            "--set",
            nargs="*",
            default=[],
            metavar="FIELD=VALUE",
            help="any onboarding field: region=, isolation=, ring=, release=...",
        )
        parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE")
        parser.add_argument("--secret-env", nargs="*", default=[], metavar="NAME=VALUE")
        parser.add_argument("--tag", nargs="*", default=[], metavar="KEY=VALUE")
        parser.add_argument("--plan", action="store_true", help="Print the plan; create nothing.")
        parser.add_argument("--wait", action="store_true", help="Follow the job to its end.")
        parser.add_argument("--timeout", type=int, default=3600)

    def handle(self, *args, **o):
        user = User.objects.filter(username=o["user"]).first()
        if user is None or not user.has_role(Role.ADMIN):
            raise CommandError(f"{o['user']!r} is not an admin of the console (--user).")
        values = {"slug": o["slug"], "name": o["name"], **_pairs(o["set"], "--set")}
        for flag, key in (("env", "env_vars"), ("secret_env", "secret_env"), ("tag", "tags")):
            if o[flag]:
                values[key] = _pairs(o[flag], f"--{flag.replace('_', '-')}")
        try:
            form = onboard_form(values)
        except OnboardingInputError as exc:
            raise CommandError("\n".join(f"{f}: {m}" for f, m in exc.problems)) from exc
        if not form.is_valid():
            lines = [
                f"{name.removesuffix('_text')}: {e['message']}"
                for name, errors in form.errors.get_json_data().items()
                for e in errors
            ]
            raise CommandError("Refused:\n  " + "\n  ".join(lines))
        found = onboarding_plan(form.build_tenant())
        self.stdout.write(f"Release: {getattr(found.release, 'version', '(none)')}")
        for item in found.planned:
            self.stdout.write(
                f"  + {item.kind}: {item.name}" + (f" ({item.note})" if item.note else "")
            )
        self.stdout.write(f"About ${found.total}/month.")
        if o["plan"]:
            return
        # The services audit through a request; this one carries the user and no address.
        request = RequestFactory().post("/tenants/onboard/")
        request.user = user
        request.audit_context = {"via": "command"}
        tenant, job = services.tenant_onboard(form=form, request=request)
        self.stdout.write(f"Onboarding {tenant.slug}: job #{job.pk}.")
        if o["wait"]:
            raise SystemExit(self._follow(job.pk, o["timeout"]))

    def _follow(self, job_id: int, timeout: int) -> int:
        deadline = time.monotonic() + timeout
        seen: set[tuple[str, str]] = set()
        while True:
            job = Job.objects.prefetch_related("steps").get(pk=job_id)
            for step in job.steps.all():
                if (step.name, step.status) not in seen:
                    seen.add((step.name, step.status))
                    self.stdout.write(f"  {step.label}: {step.status}")
            if job.status == JobStatus.SUCCEEDED:
                return 0
            if job.is_finished:
                self.stderr.write(f"Job #{job_id} {job.status}: {job.error}")
                return 1
            if time.monotonic() > deadline:
                self.stderr.write(f"Job #{job_id} still {job.status} after {timeout} s.")
                return 2
            time.sleep(3)

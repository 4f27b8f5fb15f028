"""Seed the sandbox AWS account: baseline (VPC, shared database, ECR, S3) and the demo
releases (2026.11.0-demo, 2026.12.0-demo, 2026.12.1-demo-broken).

Run by the sandbox launcher at every start, since the local AWS forgets everything.
"""

import json
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from opsconsole.aws.errors import AwsError
from opsconsole.sandbox.demo_release import DEMO_VERSIONS
from opsconsole.sandbox.seed import sandbox_seed


class Command(BaseCommand):
    help = "Create what the sandbox AWS account is missing; a second run changes nothing."

    def add_arguments(self, parser):
        parser.add_argument("--region", default=None, help="default: AWS_DEFAULT_REGION")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print the summary as JSON"
        )
        parser.add_argument(
            "--release",
            action="append",
            dest="releases",
            choices=DEMO_VERSIONS,
            help="a demo release to register (repeatable); default: all of them",
        )

    def handle(
        self, *args, region: str | None, as_json: bool, releases: list[str] | None, **options
    ):
        if not settings.SANDBOX:
            raise CommandError(
                "sandbox_seed creates a fake account baseline and only runs in the sandbox "
                "(OPSCONSOLE_SANDBOX=1). In production the baseline comes from your "
                "infrastructure code; check it with the account check job instead."
            )
        started = time.monotonic()
        try:
            summary = sandbox_seed(region=region, releases=releases or DEMO_VERSIONS)
        except (AwsError, RuntimeError) as exc:
            raise CommandError(f"Seeding the sandbox AWS account failed: {exc}") from exc
        elapsed = time.monotonic() - started
        if as_json:
            self.stdout.write(json.dumps({**summary, "seconds": round(elapsed, 2)}, indent=2))
            return
        self._print(summary, elapsed, verbose=options["verbosity"] >= 2)

    def _print(self, summary: dict, elapsed: float, *, verbose: bool) -> None:
        created = summary["created"]
        lines = [
            f"sandbox account ({summary['region']}) ready in {elapsed:.1f}s: "
            + (f"created or fixed {len(created)} things" if created else "nothing new"),
            *(f"  + {item}" for item in (created if verbose else [])),
            f"  vpc        {summary['vpc_name']} {summary['vpc_id']}, subnets "
            + ", ".join(
                f"{s} ({z})"
                for s, z in zip(summary["subnet_ids"], summary["availability_zones"], strict=True)
            ),
            f"  groups     functions {summary['function_sg_id']}, "
            f"databases {summary['database_sg_id']}",
            f"  database   {summary['db_instance']} at {summary['db_endpoint']}, "
            f"master secret {summary['master_secret_name']}",
            f"  image      {summary['image_uri']}@{summary['image_digest']}",
            f"  zip        s3://{summary['bucket']}/{summary['zip_key']}",
            f"  releases   {', '.join(summary['releases'])} ({summary['release_artifact_type']})",
        ]
        for line in lines:
            self.stdout.write(line)
        for warning in summary["warnings"]:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))

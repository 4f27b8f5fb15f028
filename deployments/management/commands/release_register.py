"""Register a release from a script: ``manage.py release_register 2026.12.0 --image
app@sha256:... --user ci``; the same checks as the Releases page and the API."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from deployments.management.commands._actor import command_user
from deployments.releases import ReleaseInput, ReleaseRefused, release_register
from opsconsole.accounts.models import Role
from opsconsole.audit.services import audit_record


class Command(BaseCommand):
    help = "Register a release from an image, a Lambda zip or an image archive."

    def add_arguments(self, parser):
        parser.add_argument("version")
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument("--image", help="repository:tag, repository@sha256:..., or an ECR URI")
        what.add_argument("--zip", type=Path, help="a Lambda zip (e.g. a Go bootstrap)")
        what.add_argument("--archive", type=Path, help="`docker save` output")
        parser.add_argument("--user", required=True, help="The operator it acts as (audit).")
        parser.add_argument("--runtime", default="")
        parser.add_argument("--handler", default="")
        parser.add_argument("--architecture", default="x86_64", choices=["x86_64", "arm64"])
        parser.add_argument("--memory-mb", type=int, default=256)
        parser.add_argument("--timeout-s", type=int, default=30)
        parser.add_argument("--health-path", default="/healthz")
        parser.add_argument("--migrations", type=Path, help="a folder of NNNN_name.sql files")
        parser.add_argument("--app-settings", type=Path, help="a JSON file (app contract)")
        parser.add_argument("--notes", default="")

    def handle(self, *args, **o):
        user = command_user(o["user"], Role.OPERATOR)
        migrations = []
        if o["migrations"]:
            if not o["migrations"].is_dir():
                raise CommandError(f"--migrations: {o['migrations']} is not a folder.")
            migrations = [(p.name, p.read_bytes()) for p in sorted(o["migrations"].glob("*.sql"))]
        app_settings = None
        if o["app_settings"]:
            try:
                app_settings = json.loads(o["app_settings"].read_text())
            except (OSError, ValueError) as exc:
                raise CommandError(f"--app-settings: {exc}") from exc
        artifact = "image" if o["image"] else "zip" if o["zip"] else "archive"
        blob = (o["zip"] or o["archive"]).read_bytes() if artifact != "image" else None
        data = ReleaseInput(
            version=o["version"],
            artifact=artifact,
            image=o["image"] or "",
            zip_bytes=blob if artifact == "zip" else None,
            archive_bytes=blob if artifact == "archive" else None,
            runtime=o["runtime"],
            handler=o["handler"],
            architecture=o["architecture"],
            memory_mb=o["memory_mb"],
            timeout_s=o["timeout_s"],
            health_path=o["health_path"],
            migration_files=migrations,
            app_settings=app_settings,
            notes=o["notes"],
        )
        try:
            release = release_register(data, created_by=user)
        except ReleaseRefused as exc:
            raise CommandError("Refused:\n  " + "\n  ".join(exc.problems)) from exc
        audit_record(
            request=None, action="release.register", obj=release, actor=user, via="command"
        )
        self.stdout.write(f"Registered {release.version}: {release.artifact_summary}")

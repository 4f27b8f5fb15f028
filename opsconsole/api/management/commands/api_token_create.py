from django.core.management.base import BaseCommand, CommandError

from opsconsole.accounts.models import User
from opsconsole.api.tokens import TokenRefused, api_token_create
from opsconsole.audit.services import audit_record


class Command(BaseCommand):
    help = "Create an API token; prints it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username", help="The token acts as this user.")
        parser.add_argument("--name", default="ci", help="What uses it (shown in the audit).")
        parser.add_argument(
            "--role", default="", help="viewer, operator or admin; at most the user's own."
        )
        parser.add_argument("--expires-days", type=int, default=None, help="Default: 90.")

    def handle(self, *args, username, name, role, expires_days, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username}.")
        try:
            token, raw = api_token_create(
                user=user, name=name, role=role, expires_days=expires_days
            )
        except TokenRefused as exc:
            raise CommandError(str(exc)) from exc
        audit_record(request=None, action="api_token.create", obj=token, actor=user, via="command")
        self.stdout.write(raw)

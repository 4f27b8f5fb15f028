from django.core.management.base import BaseCommand, CommandError

from deployments.api import api_token_create
from opsconsole.accounts.models import User


class Command(BaseCommand):
    help = "Create an API token for CI; prints it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="ci")

    def handle(self, *args, username: str, name: str, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username}.")
        _, raw = api_token_create(user=user, name=name)
        self.stdout.write(raw)

from django.core.management.base import BaseCommand, CommandError

from deployments.models import ApiToken
from opsconsole.api.tokens import api_token_revoke, token_digest
from opsconsole.audit.services import audit_record


class Command(BaseCommand):
    help = "Revoke an API token, given the token itself or the prefix the console shows."

    def add_arguments(self, parser):
        parser.add_argument("token", help="The raw token, or its first 12 characters.")

    def handle(self, *args, token, **options):
        found = ApiToken.objects.filter(key_sha256=token_digest(token)).first()
        if found is None:
            matches = list(ApiToken.objects.filter(prefix=token[:12]))
            if len(matches) > 1:
                raise CommandError(f"{len(matches)} tokens start with {token[:12]}; give it whole.")
            found = matches[0] if matches else None
        if found is None:
            raise CommandError("No such token.")
        if not api_token_revoke(found):
            self.stdout.write(f"{found} was already revoked.")
            return
        audit_record(
            request=None, action="api_token.revoke", obj=found, actor=found.user, via="command"
        )
        self.stdout.write(f"Revoked {found}.")

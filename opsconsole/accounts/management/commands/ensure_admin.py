"""Create the `admin` user, or reset its password when one is given.

The password comes from OPSCONSOLE_ADMIN_PASSWORD when set (which also resets an existing
admin's password); otherwise one is generated once and kept in a 0600 file under
.sandbox/, so `make run` can print it every time.
"""

import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from opsconsole.accounts.models import Role, User


class Command(BaseCommand):
    help = "Create or update the admin user and print where its password comes from."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        given = os.environ.get("OPSCONSOLE_ADMIN_PASSWORD", "")
        password_file = settings.SANDBOX_DIR / "admin_password"
        user = User.objects.filter(username=username).first()
        if given:
            password = given
        elif password_file.exists():
            password = password_file.read_text().strip()
        else:
            password = secrets.token_urlsafe(12)
            settings.SANDBOX_DIR.mkdir(exist_ok=True)
            password_file.write_text(password)
            password_file.chmod(0o600)
        if user is None:
            user = User(username=username, role=Role.ADMIN, is_staff=True, is_superuser=True)
            user.set_password(password)
            user.save()
            self.stdout.write(f"created admin user {username}")
        elif given or not user.has_usable_password():
            user.set_password(password)
            user.role = Role.ADMIN
            user.is_active = True
            user.save()
            self.stdout.write(f"reset the password of {username}")
        elif not user.check_password(password):
            self.stdout.write(
                f"{username} exists with a password changed since; set "
                "OPSCONSOLE_ADMIN_PASSWORD to reset it"
            )

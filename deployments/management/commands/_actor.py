"""The user a command acts as: every change is audited with a person (or a CI user)."""

from __future__ import annotations

from django.core.management.base import CommandError

from opsconsole.accounts.models import Role, User


def command_user(username: str, role: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user {username!r} (--user): create it on the Users page.")
    if not user.has_role(role):
        raise CommandError(f"{username} is not {Role(role).label.lower()}: this needs that role.")
    return user

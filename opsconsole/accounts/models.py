from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    # Ordered by power: each role can do everything the roles before it can.
    NONE = "", "No access"
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


ROLE_RANK = {Role.NONE: 0, Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


class User(AbstractUser):
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.NONE, blank=True)

    def has_role(self, role: str) -> bool:
        """True when the user's role is ``role`` or a more powerful one."""
        if not self.is_active:
            return False
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]

    @property
    def is_console_member(self) -> bool:
        return self.has_role(Role.VIEWER)

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "opsconsole.accounts"
    label = "accounts"

    def ready(self) -> None:
        from opsconsole.accounts import login_audit  # noqa: F401 - connects its receiver

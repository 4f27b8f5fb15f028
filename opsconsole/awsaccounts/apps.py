from django.apps import AppConfig


class AwsAccountsConfig(AppConfig):
    name = "opsconsole.awsaccounts"
    label = "awsaccounts"
    verbose_name = "AWS accounts"

    def ready(self) -> None:
        # The account check's job kind, and the account every job on a tenant runs in.
        from opsconsole.awsaccounts import jobs  # noqa: F401

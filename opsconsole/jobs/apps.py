from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "opsconsole.jobs"
    label = "jobs"

    def ready(self) -> None:
        # Job kinds register their step functions on import.
        from opsconsole.jobs import builtin  # noqa: F401

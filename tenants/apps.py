from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"

    def ready(self) -> None:
        # Registers the tenant job kinds (provision, reconcile, suspend, drift, offboard).
        from tenants import jobs  # noqa: F401

from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"

    def ready(self) -> None:
        from deployments.tenant_release import DeploymentsReleaseSource
        from tenants import release_source

        release_source.register(DeploymentsReleaseSource())
        # Registers the tenant_deploy job kind.
        from deployments import alias_rollback, pipeline, release_push  # noqa: F401

"""Steps 7 and 10: the release's schema in the tenant database, then its health check."""

from __future__ import annotations

from opsconsole.jobs.registry import StepTransient
from tenants import naming, release_source
from tenants.provisioning import health_check
from tenants.provisioning.common import tenant_of
from tenants.provisioning.function import resolve_release


def step_schema(job, step) -> dict:
    tenant = tenant_of(job)
    version = resolve_release(tenant)

    def on_status(text: str) -> None:
        step.detail = text[:255]
        step.save(update_fields=["detail"])

    return release_source.get().apply_schema(tenant=tenant, version=version, on_status=on_status)


def step_verify(job, step) -> dict:
    """The release's own health route through the ``live`` alias, as the tenant's HTTP API
    sends it (the same check a deployment makes of a new version before traffic)."""
    tenant = tenant_of(job)
    version = resolve_release(tenant)
    spec = release_source.get().artifact(version, region=tenant.region).health
    answer = health_check.check(tenant, spec=spec, qualifier=naming.ALIAS)
    if not answer.healthy:
        message = f"{naming.ALIAS} alias, release {version}: {answer.message}"
        if answer.retryable:
            raise StepTransient(message)  # Lambda refused the invoke; the app was never asked
        raise RuntimeError(message)
    return {"health": answer.message}

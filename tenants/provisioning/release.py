"""Steps 7 and 10: the release's schema in the tenant database, then a health invoke."""

from __future__ import annotations

from django.conf import settings

from opsconsole.aws import lambda_
from tenants import naming, release_source
from tenants.provisioning.common import tenant_of
from tenants.provisioning.function import resolve_release

HEALTH_EVENT = {"health": True, "source": "opsconsole"}


def step_schema(job, step) -> dict:
    tenant = tenant_of(job)
    version = resolve_release(tenant)

    def on_status(text: str) -> None:
        step.detail = text[:255]
        step.save(update_fields=["detail"])

    return release_source.get().apply_schema(tenant=tenant, version=version, on_status=on_status)


def health_check(tenant) -> tuple[bool, str]:
    """Invoke the `live` alias with a health event. (ok, what it answered)."""
    status, payload, error = lambda_.invoke(
        name=naming.function_name(tenant.slug),
        qualifier=naming.ALIAS,
        payload=HEALTH_EVENT,
        region=tenant.region,
    )
    if error:
        return False, f"function error {error}: {str(payload)[:300]}"
    if status != 200:
        return False, f"invoke answered HTTP {status}"
    if isinstance(payload, dict) and payload.get("ok") is True:
        return True, f"healthy, release {payload.get('release', '?')}"
    if settings.SANDBOX and payload == HEALTH_EVENT:
        # moto without Docker never runs code: it echoes the event. The invoke path
        # (function, alias, permissions) is still exercised end to end.
        return True, "sandbox: the invoke reached the alias (moto echoes, code not run)"
    return False, f"unexpected answer: {str(payload)[:300]}"


def step_verify(job, step) -> dict:
    tenant = tenant_of(job)
    ok, answer = health_check(tenant)
    if not ok:
        raise RuntimeError(f"Health invoke failed: {answer}")
    return {"health": answer}

"""What Lambda says of the tenant's function beside its metrics: a state other than Active,
its reason, a failed last update. One GetFunction of the ``live`` alias per minute (its own
100 requests/s quota, not the control plane's 15)."""

from __future__ import annotations

from opsconsole.aws import lambda_
from tenants import naming
from tenants.health.cache import Cached, cached_fetch
from tenants.models import Tenant


def function_state(tenant: Tenant, *, force: bool = False) -> Cached[str]:
    name = naming.function_name(tenant.slug)

    def fetch() -> str:
        found = lambda_.get_function_at(name=name, qualifier=naming.ALIAS, region=tenant.region)
        if found is None:
            return ""
        configuration = found.get("Configuration", {})
        said = []
        state = configuration.get("State")
        if state and state != "Active":
            said.append(f"state {state}")
        if configuration.get("StateReason"):
            said.append(configuration["StateReason"])
        if configuration.get("LastUpdateStatus") == "Failed":
            reason = configuration.get("LastUpdateStatusReason") or "no reason given"
            said.append(f"last update failed: {reason}")
        return "; ".join(said)

    return cached_fetch(f"health:function:{tenant.region}:{tenant.slug}", fetch, force=force)

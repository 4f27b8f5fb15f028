"""Step 8: the tenant's HTTP API in front of the function's `live` alias."""

from __future__ import annotations

from opsconsole.aws import apigw, lambda_
from tenants import naming, resources
from tenants.models import Tenant
from tenants.provisioning.common import Drift, account_id, tags_for, tenant_of

STAGE = "$default"
ROUTE = "$default"


def alias_arn(tenant: Tenant) -> str:
    record = resources.find(tenant, kind="alias")
    if record is None or not record.arn:
        raise RuntimeError("The function's alias is not recorded yet (step 6).")
    return record.arn


def permission_id(api_id: str) -> str:
    return f"opsconsole-apigw-{api_id}"


def _source_arn(tenant: Tenant, api_id: str) -> str:
    return f"arn:aws:execute-api:{tenant.region}:{account_id(tenant.region)}:{api_id}/*/*"


def step_api(job, step) -> dict:
    tenant = tenant_of(job)
    region = tenant.region
    name = naming.api_name(tenant.slug)
    target = alias_arn(tenant)
    api = apigw.find_api(name=name, tenant=tenant.slug, region=region)
    new_api = api is None
    if new_api:
        api = apigw.create_api(name=name, tags=tags_for(tenant), region=region)
    api_id = api["ApiId"]

    # A new API (created just above) has nothing inside it yet: no need to look.
    integrations = [
        i
        for i in ([] if new_api else apigw.list_integrations(api_id=api_id, region=region))
        if i.get("IntegrationType") == "AWS_PROXY"
    ]
    if integrations:
        integration = integrations[0]
        if (
            integration.get("IntegrationUri") != target
            or integration.get("PayloadFormatVersion") != "2.0"
        ):
            apigw.update_integration_target(
                api_id=api_id,
                integration_id=integration["IntegrationId"],
                target_arn=target,
                region=region,
            )
    else:
        integration = apigw.create_lambda_integration(
            api_id=api_id, target_arn=target, region=region
        )
    route_target = f"integrations/{integration['IntegrationId']}"
    routes = (
        {}
        if new_api
        else {r["RouteKey"]: r for r in apigw.list_routes(api_id=api_id, region=region)}
    )
    if ROUTE not in routes:
        apigw.create_route(api_id=api_id, route_key=ROUTE, target=route_target, region=region)
    elif routes[ROUTE].get("Target") != route_target:
        apigw.update_route_target(
            api_id=api_id, route_id=routes[ROUTE]["RouteId"], target=route_target, region=region
        )
    if new_api or apigw.get_stage(api_id=api_id, stage=STAGE, region=region) is None:
        apigw.create_stage(api_id=api_id, stage=STAGE, tags=tags_for(tenant), region=region)

    # Only this API may invoke the alias (SourceArn), through a statement named for it
    # (a new API's statement cannot exist yet).
    function = naming.function_name(tenant.slug)
    statements = (
        []
        if new_api
        else lambda_.get_policy_statements(function=function, qualifier=naming.ALIAS, region=region)
    )
    if not any(s.get("Sid") == permission_id(api_id) for s in statements):
        lambda_.add_permission(
            function=function,
            qualifier=naming.ALIAS,
            statement_id=permission_id(api_id),
            principal="apigateway.amazonaws.com",
            source_arn=_source_arn(tenant, api_id),
            region=region,
        )

    endpoint = api.get("ApiEndpoint") or f"https://{api_id}.execute-api.{region}.amazonaws.com"
    details = {"integration_id": integration["IntegrationId"], "endpoint": endpoint}
    if tenant.custom_domain:
        domain = apigw.get_domain(domain=tenant.custom_domain, region=region)
        if domain is None:
            apigw.create_domain(
                domain=tenant.custom_domain,
                certificate_arn=tenant.certificate_arn,
                tags=tags_for(tenant),
                region=region,
            )
        mappings = apigw.list_api_mappings(domain=tenant.custom_domain, region=region)
        if not any(m.get("ApiId") == api_id for m in mappings):
            apigw.create_api_mapping(
                domain=tenant.custom_domain, api_id=api_id, stage=STAGE, region=region
            )
        resources.record(
            tenant,
            kind="domain",
            name=tenant.custom_domain,
            identifier=tenant.custom_domain,
            details={"api_id": api_id},
        )
        endpoint = f"https://{tenant.custom_domain}"
    resources.record(tenant, kind="api", name=name, identifier=api_id, details=details)
    tenant.endpoint_url = endpoint
    tenant.save(update_fields=["endpoint_url", "updated_at"])
    return {"api_id": api_id, "endpoint": endpoint}


def api_drift(tenant: Tenant) -> list[Drift]:
    name = naming.api_name(tenant.slug)
    api = apigw.find_api(name=name, tenant=tenant.slug, region=tenant.region)
    if api is None:
        return [Drift("api", name, "exists", "present", "missing")]
    drifts = []
    try:
        target = alias_arn(tenant)
    except RuntimeError:
        target = None
    integrations = apigw.list_integrations(api_id=api["ApiId"], region=tenant.region)
    uris = [i.get("IntegrationUri") for i in integrations]
    if target and target not in uris:
        drifts.append(Drift("api", name, "integration", target, uris[0] if uris else None))
    routes = {r["RouteKey"] for r in apigw.list_routes(api_id=api["ApiId"], region=tenant.region)}
    if ROUTE not in routes:
        drifts.append(Drift("api", name, "route $default", "present", "missing"))
    if apigw.get_stage(api_id=api["ApiId"], stage=STAGE, region=tenant.region) is None:
        drifts.append(Drift("api", name, "stage $default", "present", "missing"))
    return drifts


def step_delete_api(job, step) -> dict:
    tenant = tenant_of(job)
    region = tenant.region
    name = naming.api_name(tenant.slug)
    deleted = []
    if tenant.custom_domain and apigw.delete_domain(domain=tenant.custom_domain, region=region):
        deleted.append(tenant.custom_domain)
        resources.mark(tenant, kind="domain", name=tenant.custom_domain, status="deleted")
    api = apigw.find_api(name=name, tenant=tenant.slug, region=region)
    if api is not None:
        apigw.delete_api(api_id=api["ApiId"], region=region)
        deleted.append(api["ApiId"])
    resources.mark(tenant, kind="api", name=name, status="deleted")
    return {"deleted": deleted}

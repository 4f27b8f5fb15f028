"""Step 8: the tenant's HTTP API in front of the function's `live` alias, in the shape its
release (or the tenant's override) declares (``api_shape``): the integration's payload
format version, one auto-deployed stage with its access logs and default route
throttling, CORS on the API, and a custom domain's mapping to that stage.

The API is the console's alone (one per tenant, found by name and Tenant tag), so only
what is declared stays: a stage the shape no longer names is removed once the declared
one is serving and the custom domain's mapping has moved to it, the way Terraform or
CloudFormation remove a stage dropped from a template. Keeping an old ``$default`` stage
would leave a second, unwatched way in (no alarms on it, its own throttling and CORS).
"""

from __future__ import annotations

from typing import Any

from opsconsole.aws import apigw, lambda_, logs
from opsconsole.aws.errors import AwsError
from tenants import naming, resources
from tenants.app_settings import ApiShape
from tenants.models import Tenant
from tenants.provisioning import api_shape as shapes
from tenants.provisioning.api_shape import DEFAULT_STAGE, tenant_api_shape
from tenants.provisioning.common import Drift, account_id, tags_for, tenant_of

__all__ = ["api_drift", "api_stage", "step_api", "step_delete_api", "tenant_api_shape"]

STAGE = DEFAULT_STAGE  # the stage of an API whose release declares none
ROUTE = "$default"


def api_stage(tenant: Tenant) -> str:
    """The stage the tenant's API serves (``$default`` or a named one), as metrics and
    alarms name it in their Stage dimension. The API step runs before the alarms step,
    so the stage declared is the stage that exists."""
    return tenant_api_shape(tenant).stage


def alias_arn(tenant: Tenant) -> str:
    record = resources.find(tenant, kind="alias")
    if record is None or not record.arn:
        raise RuntimeError("The function's alias is not recorded yet (step 6).")
    return record.arn


def permission_id(api_id: str) -> str:
    return f"opsconsole-apigw-{api_id}"


def _source_arn(tenant: Tenant, api_id: str) -> str:
    # Any stage, any route: the statement outlives a change of stage.
    return f"arn:aws:execute-api:{tenant.region}:{account_id(tenant.region)}:{api_id}/*/*"


def default_endpoint(api: dict[str, Any], region: str, shape: ApiShape) -> str:
    """Where clients call the API without a custom domain: a named stage is the first
    segment of every path there."""
    base = api.get("ApiEndpoint") or f"https://{api['ApiId']}.execute-api.{region}.amazonaws.com"
    return base.rstrip("/") + shape.path_prefix


# --- the step ------------------------------------------------------------------------


def _ensure_access_log_group(tenant: Tenant) -> str:
    """The group a stage writes its access logs to; API Gateway does not create it."""
    name = shapes.access_log_group(tenant)
    days = shapes.log_retention_days(tenant)
    group = logs.describe_log_group(name=name, region=tenant.region)
    if group is None:
        try:
            logs.create_log_group(name=name, tags=tags_for(tenant), region=tenant.region)
        except AwsError as exc:
            if exc.code != "ResourceAlreadyExistsException":
                raise
        group = {}
    if group.get("retentionInDays") != days:
        logs.put_retention(name=name, days=days, region=tenant.region)
    resources.record(
        tenant,
        kind="api_log_group",
        name=name,
        identifier=name,
        details={"retention_days": days},
    )
    return name


def _converge_integration(api_id: str, target: str, shape: ApiShape, *, new: bool, region: str):
    integrations = [
        i
        for i in ([] if new else apigw.list_integrations(api_id=api_id, region=region))
        if i.get("IntegrationType") == "AWS_PROXY"
    ]
    if not integrations:
        return apigw.create_lambda_integration(
            api_id=api_id, target_arn=target, payload_format=shape.payload_format, region=region
        )
    integration = integrations[0]
    if (
        integration.get("IntegrationUri") != target
        or integration.get("PayloadFormatVersion") != shape.payload_format
    ):
        apigw.update_integration_target(
            api_id=api_id,
            integration_id=integration["IntegrationId"],
            target_arn=target,
            payload_format=shape.payload_format,
            region=region,
        )
    return integration


def _converge_route(api_id: str, integration_id: str, *, new: bool, region: str) -> None:
    route_target = f"integrations/{integration_id}"
    routes = (
        {} if new else {r["RouteKey"]: r for r in apigw.list_routes(api_id=api_id, region=region)}
    )
    if ROUTE not in routes:
        apigw.create_route(api_id=api_id, route_key=ROUTE, target=route_target, region=region)
    elif routes[ROUTE].get("Target") != route_target:
        apigw.update_route_target(
            api_id=api_id, route_id=routes[ROUTE]["RouteId"], target=route_target, region=region
        )


def _converge_stage(tenant: Tenant, api_id: str, shape: ApiShape, stages: dict[str, dict]) -> None:
    region = tenant.region
    access_log = shapes.access_log_settings(tenant, shape)
    stage = stages.get(shape.stage)
    if stage is None:
        apigw.create_stage(
            api_id=api_id,
            stage=shape.stage,
            tags=tags_for(tenant),
            access_log=access_log,
            route_settings=shapes.route_settings(shape),
            region=region,
        )
        return
    log_differs = shapes.stage_access_log(stage) != access_log
    throttle_differs = shapes.stage_throttling(stage) != shapes.throttling(shape)
    if (log_differs and access_log) or throttle_differs:
        apigw.update_stage(
            api_id=api_id,
            stage=shape.stage,
            access_log=access_log if log_differs else None,
            route_settings=shapes.route_settings(shape, stage) if throttle_differs else None,
            region=region,
        )
    if log_differs and access_log is None:
        apigw.delete_access_log_settings(api_id=api_id, stage=shape.stage, region=region)


def _converge_domain(tenant: Tenant, api_id: str, shape: ApiShape) -> None:
    region = tenant.region
    domain = tenant.custom_domain
    if apigw.get_domain(domain=domain, region=region) is None:
        apigw.create_domain(
            domain=domain,
            certificate_arn=tenant.certificate_arn,
            tags=tags_for(tenant),
            region=region,
        )
    mappings = [
        m for m in apigw.list_api_mappings(domain=domain, region=region) if m.get("ApiId") == api_id
    ]
    if not mappings:
        apigw.create_api_mapping(domain=domain, api_id=api_id, stage=shape.stage, region=region)
    elif mappings[0].get("Stage") != shape.stage:
        apigw.update_api_mapping(
            domain=domain,
            mapping_id=mappings[0]["ApiMappingId"],
            api_id=api_id,
            stage=shape.stage,
            region=region,
        )
    resources.record(
        tenant,
        kind="domain",
        name=domain,
        identifier=domain,
        details={"api_id": api_id, "stage": shape.stage},
    )


def step_api(job, step) -> dict:
    tenant = tenant_of(job)
    region = tenant.region
    name = naming.api_name(tenant.slug)
    target = alias_arn(tenant)
    shape = tenant_api_shape(tenant)
    cors = shapes.cors_configuration(shape)
    log_group = _ensure_access_log_group(tenant) if shape.access_logs else None

    api = apigw.find_api(name=name, tenant=tenant.slug, region=region)
    new_api = api is None
    if new_api:
        api = apigw.create_api(name=name, tags=tags_for(tenant), cors=cors, region=region)
    elif shapes.cors_differs(cors, api.get("CorsConfiguration")):
        if cors:
            apigw.update_cors(api_id=api["ApiId"], cors=cors, region=region)
        else:
            apigw.delete_cors(api_id=api["ApiId"], region=region)
    api_id = api["ApiId"]

    # A new API (created just above) has nothing inside it yet: no need to look.
    integration = _converge_integration(api_id, target, shape, new=new_api, region=region)
    _converge_route(api_id, integration["IntegrationId"], new=new_api, region=region)
    stages = (
        {}
        if new_api
        else {s["StageName"]: s for s in apigw.list_stages(api_id=api_id, region=region)}
    )
    _converge_stage(tenant, api_id, shape, stages)

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

    endpoint = default_endpoint(api, region, shape)
    details = {
        "integration_id": integration["IntegrationId"],
        "endpoint": endpoint,
        **shapes.summary(shape),
        "access_log_group": log_group,
    }
    if tenant.custom_domain:
        _converge_domain(tenant, api_id, shape)
        # The mapping has no key: the domain's root is the stage, whatever its name.
        endpoint = f"https://{tenant.custom_domain}"
    # Last, once the declared stage serves (and the domain maps to it): what is left of
    # an earlier shape goes.
    removed = [
        old
        for old in stages
        if old != shape.stage and apigw.delete_stage(api_id=api_id, stage=old, region=region)
    ]
    resources.record(tenant, kind="api", name=name, identifier=api_id, details=details)
    tenant.endpoint_url = endpoint
    tenant.save(update_fields=["endpoint_url", "updated_at"])
    out: dict[str, Any] = {"api_id": api_id, "endpoint": endpoint, "stage": shape.stage}
    if removed:
        out["stages_removed"] = removed
    return out


# --- drift -----------------------------------------------------------------------------


def _stage_drift(tenant: Tenant, name: str, api_id: str, shape: ApiShape) -> list[Drift]:
    stages = {s["StageName"]: s for s in apigw.list_stages(api_id=api_id, region=tenant.region)}
    drifts = [
        Drift("api", name, f"stage {extra}", "absent", "present")
        for extra in sorted(stages)
        if extra != shape.stage
    ]
    stage = stages.get(shape.stage)
    if stage is None:
        return [Drift("api", name, f"stage {shape.stage}", "present", "missing"), *drifts]
    wanted_log = shapes.access_log_settings(tenant, shape)
    have_log = shapes.stage_access_log(stage)
    if have_log != wanted_log:
        drifts.append(Drift("api", name, "access_logs", wanted_log, have_log))
    if shape.access_logs and (
        logs.describe_log_group(name=shapes.access_log_group(tenant), region=tenant.region) is None
    ):
        drifts.append(
            Drift("api", name, "access_log_group", shapes.access_log_group(tenant), "missing")
        )
    wanted_throttle, have_throttle = shapes.throttling(shape), shapes.stage_throttling(stage)
    if wanted_throttle != have_throttle:
        drifts.append(Drift("api", name, "throttling", wanted_throttle, have_throttle))
    return drifts


def api_drift(tenant: Tenant) -> list[Drift]:
    name = naming.api_name(tenant.slug)
    api = apigw.find_api(name=name, tenant=tenant.slug, region=tenant.region)
    if api is None:
        return [Drift("api", name, "exists", "present", "missing")]
    api_id = api["ApiId"]
    shape = tenant_api_shape(tenant)
    drifts = []
    try:
        target = alias_arn(tenant)
    except RuntimeError:
        target = None
    integrations = apigw.list_integrations(api_id=api_id, region=tenant.region)
    uris = [i.get("IntegrationUri") for i in integrations]
    if target and target not in uris:
        drifts.append(Drift("api", name, "integration", target, uris[0] if uris else None))
    formats = [i.get("PayloadFormatVersion") for i in integrations]
    if formats and shape.payload_format not in formats:
        drifts.append(Drift("api", name, "payload_format", shape.payload_format, formats[0]))
    routes = {r["RouteKey"] for r in apigw.list_routes(api_id=api_id, region=tenant.region)}
    if ROUTE not in routes:
        drifts.append(Drift("api", name, "route $default", "present", "missing"))
    drifts += _stage_drift(tenant, name, api_id, shape)
    wanted_cors = shapes.cors_configuration(shape)
    if shapes.cors_differs(wanted_cors, api.get("CorsConfiguration")):
        drifts.append(Drift("api", name, "cors", wanted_cors, api.get("CorsConfiguration")))
    if tenant.custom_domain:
        mapped = [
            m.get("Stage")
            for m in apigw.list_api_mappings(domain=tenant.custom_domain, region=tenant.region)
            if m.get("ApiId") == api_id
        ]
        if shape.stage not in mapped:
            drifts.append(
                Drift(
                    "domain",
                    tenant.custom_domain,
                    "mapping stage",
                    shape.stage,
                    mapped[0] if mapped else "missing",
                )
            )
    return drifts


def step_delete_api(job, step) -> dict:
    """The API (its stages and integrations go with it) and the custom domain. The access
    log group stays, as the function's does, until its retention runs out."""
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

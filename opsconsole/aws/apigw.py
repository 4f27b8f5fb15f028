"""API Gateway v2 (HTTP APIs): one API per tenant, integrated with the function's alias.

The integration points at the `live` alias, so a rollout moves the alias and makes no API
Gateway calls at all (management calls are limited to about 10/s per account).
"""

from __future__ import annotations

import contextlib

from opsconsole.aws.clients import call, client
from opsconsole.aws.errors import AwsNotFound


def find_api(*, name: str, tenant: str, region: str | None = None) -> dict | None:
    """The API with this name and Tenant tag (names are not unique in API Gateway)."""
    apigw = client("apigatewayv2", region)
    token = None
    while True:
        kwargs = {"NextToken": token} if token else {}
        resp = call(apigw.get_apis, **kwargs)
        for api in resp.get("Items", []):
            if api.get("Name") == name and api.get("Tags", {}).get("Tenant") == tenant:
                return api
        token = resp.get("NextToken")
        if not token:
            return None


def get_api(*, api_id: str, region: str | None = None) -> dict | None:
    try:
        return call(client("apigatewayv2", region).get_api, ApiId=api_id)
    except AwsNotFound:
        return None


def create_api(
    *, name: str, tags: dict[str, str], cors: dict | None = None, region: str | None = None
) -> dict:
    extra = {"CorsConfiguration": cors} if cors else {}
    return call(
        client("apigatewayv2", region).create_api,
        Name=name,
        ProtocolType="HTTP",
        Tags=tags,
        **extra,
    )


def update_cors(*, api_id: str, cors: dict, region: str | None = None) -> None:
    call(client("apigatewayv2", region).update_api, ApiId=api_id, CorsConfiguration=cors)


def delete_cors(*, api_id: str, region: str | None = None) -> None:
    """The API answers no preflight and adds no CORS headers any more."""
    with contextlib.suppress(AwsNotFound):
        call(client("apigatewayv2", region).delete_cors_configuration, ApiId=api_id)


def list_integrations(*, api_id: str, region: str | None = None) -> list[dict]:
    resp = call(client("apigatewayv2", region).get_integrations, ApiId=api_id)
    return resp.get("Items", [])


def create_lambda_integration(
    *, api_id: str, target_arn: str, payload_format: str = "2.0", region: str | None = None
):
    return call(
        client("apigatewayv2", region).create_integration,
        ApiId=api_id,
        IntegrationType="AWS_PROXY",
        IntegrationUri=target_arn,
        PayloadFormatVersion=payload_format,
        IntegrationMethod="POST",
    )


def update_integration_target(
    *,
    api_id: str,
    integration_id: str,
    target_arn: str,
    payload_format: str = "2.0",
    region: str | None = None,
) -> None:
    call(
        client("apigatewayv2", region).update_integration,
        ApiId=api_id,
        IntegrationId=integration_id,
        IntegrationUri=target_arn,
        PayloadFormatVersion=payload_format,
    )


def list_routes(*, api_id: str, region: str | None = None) -> list[dict]:
    return call(client("apigatewayv2", region).get_routes, ApiId=api_id).get("Items", [])


def create_route(*, api_id: str, route_key: str, target: str, region: str | None = None):
    return call(
        client("apigatewayv2", region).create_route,
        ApiId=api_id,
        RouteKey=route_key,
        Target=target,
    )


def update_route_target(
    *, api_id: str, route_id: str, target: str, region: str | None = None
) -> None:
    call(client("apigatewayv2", region).update_route, ApiId=api_id, RouteId=route_id, Target=target)


def get_stage(*, api_id: str, stage: str, region: str | None = None) -> dict | None:
    try:
        return call(client("apigatewayv2", region).get_stage, ApiId=api_id, StageName=stage)
    except AwsNotFound:
        return None


def list_stages(*, api_id: str, region: str | None = None) -> list[dict]:
    return call(client("apigatewayv2", region).get_stages, ApiId=api_id).get("Items", [])


def create_stage(
    *,
    api_id: str,
    stage: str,
    tags: dict[str, str],
    access_log: dict | None = None,
    route_settings: dict | None = None,
    region: str | None = None,
):
    """An auto-deployed stage: every route change is live at once (no deployments)."""
    extra: dict = {}
    if access_log:
        extra["AccessLogSettings"] = access_log
    if route_settings:
        extra["DefaultRouteSettings"] = route_settings
    return call(
        client("apigatewayv2", region).create_stage,
        ApiId=api_id,
        StageName=stage,
        AutoDeploy=True,
        Tags=tags,
        **extra,
    )


def update_stage(
    *,
    api_id: str,
    stage: str,
    access_log: dict | None = None,
    route_settings: dict | None = None,
    region: str | None = None,
) -> dict:
    """Change what is given (AccessLogSettings, DefaultRouteSettings); turning access logs
    off is ``delete_access_log_settings``."""
    extra: dict = {}
    if access_log:
        extra["AccessLogSettings"] = access_log
    if route_settings is not None:
        extra["DefaultRouteSettings"] = route_settings
    return call(client("apigatewayv2", region).update_stage, ApiId=api_id, StageName=stage, **extra)


def delete_access_log_settings(*, api_id: str, stage: str, region: str | None = None) -> None:
    call(client("apigatewayv2", region).delete_access_log_settings, ApiId=api_id, StageName=stage)


def delete_stage(*, api_id: str, stage: str, region: str | None = None) -> bool:
    try:
        call(client("apigatewayv2", region).delete_stage, ApiId=api_id, StageName=stage)
    except AwsNotFound:
        return False
    return True


def get_domain(*, domain: str, region: str | None = None) -> dict | None:
    try:
        return call(client("apigatewayv2", region).get_domain_name, DomainName=domain)
    except AwsNotFound:
        return None


def create_domain(
    *, domain: str, certificate_arn: str, tags: dict[str, str], region: str | None = None
) -> dict:
    return call(
        client("apigatewayv2", region).create_domain_name,
        DomainName=domain,
        DomainNameConfigurations=[
            {
                "CertificateArn": certificate_arn,
                "EndpointType": "REGIONAL",
                "SecurityPolicy": "TLS_1_2",
            }
        ],
        Tags=tags,
    )


def list_api_mappings(*, domain: str, region: str | None = None) -> list[dict]:
    try:
        resp = call(client("apigatewayv2", region).get_api_mappings, DomainName=domain)
    except AwsNotFound:
        return []
    return resp.get("Items", [])


def create_api_mapping(*, domain: str, api_id: str, stage: str, region: str | None = None):
    return call(
        client("apigatewayv2", region).create_api_mapping,
        DomainName=domain,
        ApiId=api_id,
        Stage=stage,
    )


def update_api_mapping(
    *, domain: str, mapping_id: str, api_id: str, stage: str, region: str | None = None
) -> None:
    """Point an existing mapping at another stage: the domain answers throughout."""
    call(
        client("apigatewayv2", region).update_api_mapping,
        DomainName=domain,
        ApiMappingId=mapping_id,
        ApiId=api_id,
        Stage=stage,
    )


def delete_domain(*, domain: str, region: str | None = None) -> bool:
    try:
        call(client("apigatewayv2", region).delete_domain_name, DomainName=domain)
    except AwsNotFound:
        return False
    return True


def delete_api(*, api_id: str, region: str | None = None) -> bool:
    try:
        call(client("apigatewayv2", region).delete_api, ApiId=api_id)
    except AwsNotFound:
        return False
    return True

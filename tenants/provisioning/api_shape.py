"""The shape a tenant's HTTP API should have, in API Gateway's own terms.

The release declares it (``AppSettings.api``), the tenant may override parts of it
(``TenantOverrides.api``): payload format version, stage, CORS, access logs, default route
throttling. This module turns the effective shape into the arguments API Gateway takes
(CorsConfiguration, AccessLogSettings, DefaultRouteSettings) and compares them with what
API Gateway reports, so the step and the drift check agree on what "differs" means.
"""

from __future__ import annotations

import json
from typing import Any

from tenants import naming, release_source
from tenants.app_settings import ApiShape, AppSettings, effective_api, parse_overrides
from tenants.models import Tenant
from tenants.provisioning import log_group
from tenants.provisioning.common import account_id

DEFAULT_STAGE = "$default"

# One JSON object a request, in the $context variables AWS documents for HTTP API access
# logs ("Customize HTTP API access logs"); a quoted variable with no value is "-".
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "routeKey": "$context.routeKey",
        "path": "$context.path",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
        "responseLatency": "$context.responseLatency",
        "integrationError": "$context.integrationErrorMessage",
    },
    separators=(",", ":"),
)


def tenant_api_shape(tenant: Tenant) -> ApiShape:
    """The release's API shape with the tenant's overrides: what its API should be.

    The release is the one the tenant is moving to (desired), else the one it runs; a
    tenant with neither gets the defaults (payload 2.0 on ``$default``).
    """
    version = tenant.desired_release or tenant.current_release
    app = AppSettings()
    if version:
        app = release_source.get().artifact(version, region=tenant.region).app_settings
    return effective_api(app, parse_overrides(tenant.app_overrides))


def access_log_group(tenant: Tenant) -> str:
    return f"/aws/apigateway/{naming.api_name(tenant.slug)}"


def access_log_settings(tenant: Tenant, shape: ApiShape) -> dict[str, str] | None:
    if not shape.access_logs:
        return None
    group = access_log_group(tenant)
    arn = f"arn:aws:logs:{tenant.region}:{account_id(tenant.region)}:log-group:{group}"
    return {"DestinationArn": arn, "Format": ACCESS_LOG_FORMAT}


def log_retention_days(tenant: Tenant) -> int:
    # The API's access logs are kept as long as the function's own logs.
    return log_group.retention_days(tenant)


def cors_configuration(shape: ApiShape) -> dict[str, Any] | None:
    if shape.cors is None:
        return None
    cors = shape.cors
    out: dict[str, Any] = {
        "AllowOrigins": list(cors.allow_origins),
        "AllowMethods": list(cors.allow_methods),
        "AllowHeaders": list(cors.allow_headers),
        "AllowCredentials": cors.allow_credentials,
    }
    if cors.expose_headers:
        out["ExposeHeaders"] = list(cors.expose_headers)
    if cors.max_age_s:
        out["MaxAge"] = cors.max_age_s
    return out


def _normal_cors(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """A CORS configuration in a form two of them compare in: API Gateway keeps header
    names as given, but they are case-insensitive; order means nothing; an empty
    configuration is none."""
    if not config or not config.get("AllowOrigins"):
        return None
    return {
        "AllowOrigins": sorted(config.get("AllowOrigins") or []),
        "AllowMethods": sorted(m.upper() for m in config.get("AllowMethods") or []),
        "AllowHeaders": sorted(h.lower() for h in config.get("AllowHeaders") or []),
        "ExposeHeaders": sorted(h.lower() for h in config.get("ExposeHeaders") or []),
        "AllowCredentials": bool(config.get("AllowCredentials")),
        "MaxAge": int(config.get("MaxAge") or 0),
    }


def cors_differs(wanted: dict[str, Any] | None, have: dict[str, Any] | None) -> bool:
    return _normal_cors(wanted) != _normal_cors(have)


def throttling(shape: ApiShape) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    if shape.throttle_rate is not None:
        out["ThrottlingRateLimit"] = float(shape.throttle_rate)
    if shape.throttle_burst is not None:
        out["ThrottlingBurstLimit"] = int(shape.throttle_burst)
    return out


def stage_throttling(stage: dict[str, Any]) -> dict[str, float | int]:
    settings_ = stage.get("DefaultRouteSettings") or {}
    out: dict[str, float | int] = {}
    if settings_.get("ThrottlingRateLimit") is not None:
        out["ThrottlingRateLimit"] = float(settings_["ThrottlingRateLimit"])
    if settings_.get("ThrottlingBurstLimit") is not None:
        out["ThrottlingBurstLimit"] = int(settings_["ThrottlingBurstLimit"])
    return out


def route_settings(shape: ApiShape, stage: dict[str, Any] | None = None) -> dict[str, Any]:
    """DefaultRouteSettings with the declared throttling; the stage's other settings
    (detailed metrics) stay as they are."""
    current = dict((stage or {}).get("DefaultRouteSettings") or {})
    current.pop("ThrottlingRateLimit", None)
    current.pop("ThrottlingBurstLimit", None)
    current.setdefault("DetailedMetricsEnabled", False)
    return {**current, **throttling(shape)}


def stage_access_log(stage: dict[str, Any]) -> dict[str, str] | None:
    settings_ = stage.get("AccessLogSettings") or {}
    if not settings_.get("DestinationArn"):
        return None
    return {"DestinationArn": settings_["DestinationArn"], "Format": settings_.get("Format", "")}


def summary(shape: ApiShape) -> dict[str, Any]:
    """The shape as the api resource's record keeps it (and the health check reads)."""
    return {
        "payload_format_version": shape.payload_format,
        "stage": shape.stage,
        "cors": shape.cors.model_dump() if shape.cors else None,
        "access_logs": shape.access_logs,
        "throttle_rate": shape.throttle_rate,
        "throttle_burst": shape.throttle_burst,
    }

"""API Gateway v2 calls moto lacks: UpdateStage, DeleteAccessLogSettings, UpdateApiMapping.

The console converges a tenant's stage in place (access logs, default route throttling)
and moves a custom domain's mapping to another stage without taking the domain down;
moto (5.2) answers none of these. They are added to moto's apigatewayv2 backend and its
response class, so both the local AWS server and in-process moto (``patch_moto``, for
unit tests) answer them as AWS does:

- UpdateStage changes what the request gives; DefaultRouteSettings given replaces the
  stage's (the console always sends the whole object);
- DeleteAccessLogSettings turns a stage's access logging off (204);
- UpdateApiMapping points a mapping at another stage (or API, or key).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from moto.apigateway import urls as v1_urls
from moto.apigatewayv2 import models, responses, urls

from opsconsole.sandbox.localaws.config import LocalAwsConfig

_STAGE_FIELDS = {
    "accessLogSettings": "access_log_settings",
    "autoDeploy": "auto_deploy",
    "clientCertificateId": "client_certificate_id",
    "defaultRouteSettings": "default_route_settings",
    "description": "description",
    "routeSettings": "route_settings",
    "stageVariables": "stage_variables",
}
_ACCESS_LOG_PATH = "{0}/v2/apis/(?P<api_id>[^/]+)/stages/(?P<stage_name>[^/]+)/accesslogsettings$"


# --- the backend ---------------------------------------------------------------------------


def _update_stage(
    self: models.ApiGatewayV2Backend, api_id: str, stage_name: str, changes: dict[str, Any]
) -> models.Stage:
    stage = self.get_stage(api_id, stage_name)
    for key, attribute in _STAGE_FIELDS.items():
        if key in changes:
            setattr(stage, attribute, changes[key])
            stage.config[key] = changes[key]
    stage.updated = datetime.now()
    return stage


def _delete_access_log_settings(
    self: models.ApiGatewayV2Backend, api_id: str, stage_name: str
) -> None:
    stage = self.get_stage(api_id, stage_name)
    stage.access_log_settings = None
    stage.config.pop("accessLogSettings", None)


def _update_api_mapping(
    self: models.ApiGatewayV2Backend,
    domain_name: str,
    api_mapping_id: str,
    changes: dict[str, Any],
) -> models.ApiMapping:
    mapping = self.get_api_mapping(api_mapping_id=api_mapping_id, domain_name=domain_name)
    if "apiId" in changes:
        self.get_api(changes["apiId"])  # NotFound for an API that does not exist
        mapping.api_id = changes["apiId"]
    if "stage" in changes:
        mapping.stage = changes["stage"]
    if "apiMappingKey" in changes:
        mapping.api_mapping_key = changes["apiMappingKey"]
    return mapping


# --- the responses -------------------------------------------------------------------------


def _update_stage_response(self: responses.ApiGatewayV2Response) -> Any:
    parts = self.path.split("/")
    api_id, stage_name = parts[-3], unquote(parts[-1])
    stage = self.apigatewayv2_backend.update_stage(api_id, stage_name, json.loads(self.body))
    return 200, {}, json.dumps(stage.to_json())


def _delete_access_log_settings_response(self: responses.ApiGatewayV2Response) -> Any:
    parts = self.path.split("/")
    api_id, stage_name = parts[-4], unquote(parts[-2])
    self.apigatewayv2_backend.delete_access_log_settings(api_id, stage_name)
    return 204, {}, ""


def _update_api_mapping_response(self: responses.ApiGatewayV2Response) -> Any:
    parts = self.path.split("/")
    domain_name, mapping_id = parts[-3], parts[-1]
    mapping = self.apigatewayv2_backend.update_api_mapping(
        domain_name, mapping_id, json.loads(self.body)
    )
    return 200, {}, json.dumps(mapping.to_json())


def patch_moto() -> None:
    """Teach moto's apigatewayv2 the calls above (idempotent; server or in process)."""
    backend_cls = models.ApiGatewayV2Backend
    response_cls = responses.ApiGatewayV2Response
    for cls, name, function in (
        (backend_cls, "update_stage", _update_stage),
        (backend_cls, "delete_access_log_settings", _delete_access_log_settings),
        (backend_cls, "update_api_mapping", _update_api_mapping),
        (response_cls, "update_stage", _update_stage_response),
        (response_cls, "delete_access_log_settings", _delete_access_log_settings_response),
        (response_cls, "update_api_mapping", _update_api_mapping_response),
    ):
        if name not in cls.__dict__:
            setattr(cls, name, function)
    # The other two share URLs moto already routes (PATCH on a stage or a mapping). The
    # apigateway (v1) service owns the host and routes v2 paths through a copy of v2's
    # url_paths made when it was imported: the path goes into both.
    for paths in (urls.url_paths, v1_urls.url_paths):
        paths.setdefault(_ACCESS_LOG_PATH, response_cls.dispatch)


def install(config: LocalAwsConfig) -> None:
    # Before apigw_proxy installs: it wraps every update_/delete_ method of the backend to
    # drop its caches, these included.
    patch_moto()


def route(request: Any) -> None:
    return None

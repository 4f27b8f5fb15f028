"""The WSGI application: the extensions' routes first, then moto's dispatcher.

Each extension module offers ``install(config)`` (patch moto's backends, start its
background threads) and ``route(request) -> Response | None`` (answer a request moto
would get wrong, or leave it to moto). Order matters only for routes that could overlap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from moto.core.config import default_user_config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.wrappers import Request, Response

from opsconsole.sandbox.localaws import (
    apigw_endpoint,
    apigw_ext,
    apigw_proxy,
    cloudwatch_ext,
    faults,
    lambda_architecture,
    lambda_invoke,
    lambda_model,
    lambda_revisions,
    lambda_versions,
    rds_engine_versions,
    rds_ext,
    rds_windows,
    secrets_stages,
    sns_delivery,
)
from opsconsole.sandbox.localaws.config import LocalAwsConfig

logger = logging.getLogger(__name__)

HEALTH_PATH = "/_localaws/health"

# faults first: an armed drill answers before anything else would; then the Lambda
# model (off unless armed), whose latency and throttles come before any answer.
EXTENSIONS: list[ModuleType] = [
    faults,
    lambda_model,
    lambda_invoke,
    lambda_architecture,
    apigw_ext,  # before apigw_proxy, which wraps the backend's update_/delete_ calls
    apigw_proxy,
    apigw_endpoint,
    cloudwatch_ext,
    sns_delivery,
    rds_ext,
    rds_engine_versions,
    rds_windows,
    secrets_stages,
    lambda_revisions,
    lambda_versions,
]


class LocalAws:
    def __init__(self, config: LocalAwsConfig) -> None:
        self.config = config
        # What the moto server's POST /moto-api/config would set, before any function
        # exists: Lambda never looks for Docker, IAM knows AWS's managed policies.
        default_user_config["lambda"]["use_docker"] = False
        default_user_config["iam"]["load_aws_managed_policies"] = True
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.routes: list[Callable[[Request], Response | None]] = []
        for extension in EXTENSIONS:
            extension.install(config)
            self.routes.append(extension.route)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        request = Request(environ, shallow=False)
        if request.path == HEALTH_PATH:
            # For health checks (docker compose, start-up): the server answers requests.
            return Response('{"status": "running"}', content_type="application/json")(
                environ, start_response
            )
        for route in self.routes:
            try:
                response = route(request)
            except Exception:  # noqa: BLE001 - an extension's bug answers 500, as AWS would
                logger.exception("local AWS extension failed: %s %s", request.method, request.path)
                response = Response(
                    '{"message": "Internal error in the sandbox\'s local AWS"}',
                    status=500,
                    content_type="application/json",
                )
            if response is not None:
                return response(environ, start_response)
        # Request(shallow=False) may have read the body: hand moto a fresh stream.
        environ["wsgi.input"] = _rewound(request)
        return self.moto(environ, start_response)


def _rewound(request: Request):
    import io

    return io.BytesIO(request.get_data(cache=True))

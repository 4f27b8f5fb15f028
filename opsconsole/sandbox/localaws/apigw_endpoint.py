"""An HTTP API's ApiEndpoint is an address that answers.

AWS gives each HTTP API ``https://<api-id>.execute-api.<region>.amazonaws.com``; nothing
answers there from a sandbox. The local AWS serves every API under its own address
(``apigw_proxy``: ``<endpoint>/_aws/execute-api/<api-id>/``), so that is what CreateApi
and GetApi report. The console records ApiEndpoint as AWS reports it and shows it as the
tenant's URL, so the link on the tenant page works in the sandbox as in production.
"""

from __future__ import annotations

from typing import Any

from moto.apigatewayv2 import models
from werkzeug.wrappers import Request, Response

from opsconsole.sandbox.localaws.config import LocalAwsConfig

_original_init = models.Api.__init__


def install(config: LocalAwsConfig) -> None:
    base = config.public_endpoint

    def init(self: models.Api, *args: Any, **kwargs: Any) -> None:
        _original_init(self, *args, **kwargs)
        self.api_endpoint = f"{base}/_aws/execute-api/{self.api_id}"

    models.Api.__init__ = init  # type: ignore[method-assign]


def route(request: Request) -> Response | None:
    return None

"""The JSON API at /api/v1/: generated from typed schemas by django-ninja.

django-ninja rather than DRF + drf-spectacular: the console's views are plain functions and
its settings already pydantic models (tenants.app_settings), so ninja's pydantic schemas
give request parsing, response shapes and the OpenAPI document from one declaration,
without a second serializer layer. Its Swagger UI is served from its own package's static
files (no CDN).
"""

from __future__ import annotations

from ninja import NinjaAPI
from ninja.openapi.docs import Swagger

from opsconsole.accounts.access import viewer_required
from opsconsole.api import errors, jobs, releases, rollouts, tenants
from opsconsole.api.auth import TokenAuth

api = NinjaAPI(
    title="opsconsole",
    version="1",
    description=(
        "Drive the console from CI and scripts. Authenticate with a token "
        "(`Authorization: Bearer ocs_...`) made on your account page or with "
        "`manage.py api_token_create`. Changes accept an `Idempotency-Key` header: a "
        "repeated request with the same key gets the first answer and does nothing twice."
    ),
    auth=TokenAuth(),
    urls_namespace="api",
    docs=Swagger(settings={"persistAuthorization": True}),
    docs_url="/docs",
    # The document and its page are for members, as every other page is.
    docs_decorator=viewer_required,
    openapi_url="/openapi.json",
)
errors.install(api)
api.add_router("/releases", releases.router)
api.add_router("/rollouts", rollouts.router)
api.add_router("/tenants", tenants.router)
api.add_router("/jobs", jobs.router)

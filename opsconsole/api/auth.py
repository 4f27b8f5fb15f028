"""Bearer-token authentication and the role and scope checks every endpoint makes."""

from __future__ import annotations

from django.http import HttpRequest
from ninja.security import HttpBearer

from opsconsole.accounts.models import Role
from opsconsole.api.errors import ApiError
from opsconsole.api.tokens import Principal, rate_limit_wait, token_authenticate


class TokenAuth(HttpBearer):
    openapi_scheme = "bearer"

    def authenticate(self, request: HttpRequest, token: str) -> Principal | None:
        principal = token_authenticate(token.strip())
        if principal is None:
            return None
        # An outsider's token (the owner lost their role) learns nothing, as on the pages.
        if not principal.has_role(Role.VIEWER):
            raise ApiError(404, "Not found.")
        wait = rate_limit_wait(principal.token)
        if wait:
            raise ApiError(
                429,
                f"Rate limit: this token may make a limited number of requests a minute; "
                f"retry in {wait} s.",
                headers={"Retry-After": str(wait)},
            )
        # Views and services use request.user for the audit and the tenant scope; every
        # audit record the request causes names the token.
        request.user = principal.user
        token = principal.token
        request.audit_context = {"via": "api", "api_token_name": f"{token.name} ({token.prefix}…)"}
        return principal


def principal(request: HttpRequest) -> Principal:
    return request.auth  # type: ignore[attr-defined]


def require(request: HttpRequest, role: str) -> Principal:
    """403 with the role it needs when the token's role is too low."""
    who = principal(request)
    if not who.has_role(role):
        raise ApiError(
            403, f"This needs the {Role(role).label.lower()} role; the token has {who.role}."
        )
    return who


def audit(request: HttpRequest, action: str, obj=None, **details) -> None:
    """The audit record of a change made through the API (the token is added by
    ``audit_context``)."""
    from opsconsole.audit.services import audit_record

    audit_record(request=request, action=action, obj=obj, **details)

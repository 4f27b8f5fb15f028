"""Which tenants a user may see: the one place every view, export and API call asks.

Scoping is by a :class:`~tenants.models.TenantScope` row (a list of tenants and tag
values). Outsiders to a tenant get 404, never 403, so the console does not confirm that a
tenant exists to someone who may not see it.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from tenants.models import Tenant, TenantScope


def _scope(user) -> TenantScope | None:
    if not getattr(user, "is_authenticated", False):
        return None
    # Cached on the user object for the request: views ask several times.
    if not hasattr(user, "_tenant_scope_cache"):
        user._tenant_scope_cache = TenantScope.objects.filter(user=user).first()
    return user._tenant_scope_cache


def user_is_scoped(user) -> bool:
    """True when the user sees only some tenants (and so may not act on the whole fleet)."""
    return _scope(user) is not None


def scope_filter(user, prefix: str = "") -> Q:
    """A ``Q`` admitting the tenants ``user`` may see, for a model reaching Tenant through
    ``prefix`` (``"tenant__"`` for a Deployment, ``""`` for a Tenant)."""
    scope = _scope(user)
    if scope is None:
        return Q()
    q = Q(**{f"{prefix}pk__in": scope.tenants.values("pk")})
    for key, values in (scope.tags or {}).items():
        for value in values if isinstance(values, list) else [values]:
            q |= Q(**{f"{prefix}tags__{key}": value})
    return q


def visible_tenants(user, queryset: QuerySet | None = None) -> QuerySet:
    """The tenants ``user`` may see (every one for an unscoped member)."""
    qs = Tenant.objects.all() if queryset is None else queryset
    scope = _scope(user)
    if scope is None:
        return qs
    return qs.filter(scope_filter(user)).distinct()


def tenant_visible(user, tenant: Tenant) -> bool:
    if _scope(user) is None:
        return True
    return visible_tenants(user).filter(pk=tenant.pk).exists()


def visible_tenant_or_404(user, queryset: QuerySet | None = None, **lookup) -> Tenant:
    """The tenant matching ``lookup`` if ``user`` may see it; else 404 (never 403)."""
    tenant = visible_tenants(user, queryset).filter(**lookup).first()
    if tenant is None:
        raise Http404("No such tenant.")
    return tenant


def scope_describe(user) -> str:
    """For the account page and the audit: what the user is limited to."""
    scope = _scope(user)
    if scope is None:
        return "all tenants"
    parts = [t.slug for t in scope.tenants.all()]
    parts += [f"{k}={v}" for k, vs in (scope.tags or {}).items() for v in vs]
    return ", ".join(parts) or "no tenants"

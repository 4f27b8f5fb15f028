"""Which tenants a user may see: the one place every view, export and API call asks.

Scoping is by a :class:`~tenants.models.TenantScope` row (a list of tenants and tag
values). Outsiders to a tenant get 404, never 403, so the console does not confirm that a
tenant exists to someone who may not see it.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast
from django.http import Http404

from opsconsole.jobs.models import Job
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


def scope_set(*, user, scope: tuple[list[Tenant], dict[str, list[str]]] | None) -> None:
    """Limit ``user`` to ``scope`` (tenants, tag values), or lift the limit (None)."""
    with transaction.atomic():
        if scope is None:
            TenantScope.objects.filter(user=user).delete()
        else:
            tenants, tags = scope
            row, _ = TenantScope.objects.update_or_create(user=user, defaults={"tags": tags})
            row.tenants.set(tenants)
    user.__dict__.pop("_tenant_scope_cache", None)


def scope_describe(user) -> str:
    """For the account page and the audit: what the user is limited to."""
    scope = _scope(user)
    if scope is None:
        return "all tenants"
    parts = [t.slug for t in scope.tenants.all()]
    parts += [f"{k}={v}" for k, vs in (scope.tags or {}).items() for v in vs]
    return ", ".join(parts) or "no tenants"


# --- what follows a tenant -------------------------------------------------------------
#
# A job of a tenant (subject "tenant") follows its tenant; a job of no tenant (the fleet's
# topic, a release push, the account check) is the whole fleet's and hidden from a scoped
# user. So are audit entries: a scoped user sees those about their tenants and their
# tenants' jobs only, since the rest names tenants, people and settings of others.


def visible_jobs(user, queryset: QuerySet | None = None) -> QuerySet:
    qs = Job.objects.all() if queryset is None else queryset
    if _scope(user) is None:
        return qs
    return qs.filter(subject_type="tenant", subject_id__in=visible_tenants(user).values("slug"))


def audit_scope_filter(user) -> Q:
    """A ``Q`` on AuditEvent admitting the entries ``user`` may read."""
    if _scope(user) is None:
        return Q()
    text = CharField()
    tenant_ids = visible_tenants(user).annotate(key=Cast("pk", text)).values("key")
    job_ids = visible_jobs(user).annotate(key=Cast("pk", text)).values("key")
    return Q(object_type="tenants.tenant", object_id__in=tenant_ids) | Q(
        object_type="jobs.job", object_id__in=job_ids
    )


def refuse_scoped(user, what: str) -> None:
    """What concerns the whole fleet (its topic, its attachments, the AWS account) is for
    users who see every tenant."""
    if _scope(user) is not None:
        raise PermissionDenied(
            f"{what} concerns the whole fleet: only someone who sees every tenant may change it."
        )


# --- checks for opsconsole.accounts.access.role_required(visible=...) ------------------
#
# Each takes the URL's keyword arguments and raises 404 when they name another tenant's
# object. They run before the role check, so a scoped viewer posting to an admin action
# of another tenant learns nothing from a 403.


def tenant_slug_visible(request, *, slug: str, **_) -> None:
    if _scope(request.user) is not None:
        visible_tenant_or_404(request.user, slug=slug)


def job_visible(request, *, job_id: int, **_) -> None:
    user = request.user
    if _scope(user) is not None and not visible_jobs(user).filter(pk=job_id).exists():
        raise Http404("No such job.")

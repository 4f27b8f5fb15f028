"""Rollouts as a user limited to some tenants (tenants.scope) sees them, and the rule that
keeps such a user from deploying beyond those tenants.

A rollout is visible when it deploys to at least one tenant the user may see; its page then
counts and lists those deployments only. A rollout that also reaches tenants the user does
not see is theirs to watch, not to steer: pausing or cancelling it would act on the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Count, Exists, OuterRef, QuerySet
from django.http import Http404

from deployments.models import Deployment, Rollout
from tenants.scope import scope_filter, user_is_scoped, visible_tenants

if TYPE_CHECKING:
    from deployments.rollouts import Target


def visible_rollouts(user, queryset: QuerySet | None = None) -> QuerySet:
    qs = Rollout.objects.all() if queryset is None else queryset
    if not user_is_scoped(user):
        return qs
    mine = Deployment.objects.filter(scope_filter(user, "tenant__"), rollout=OuterRef("pk"))
    return qs.filter(Exists(mine))


def visible_rollout_or_404(user, queryset: QuerySet | None = None, *, pk: int) -> Rollout:
    rollout = visible_rollouts(user, queryset).filter(pk=pk).first()
    if rollout is None:
        raise Http404("No such rollout.")
    return rollout


def rollout_visible(request, *, rollout_id: int, **_) -> None:
    """For ``role_required(visible=...)``: 404 before a 403 or a 405 could say it exists."""
    if user_is_scoped(request.user):
        visible_rollout_or_404(request.user, pk=rollout_id)


def visible_deployments(user, rollout: Rollout) -> QuerySet | None:
    """The rollout's deployments the user may see; None when they see all of them (the
    page then reads the rollout's own numbers, the wave sizes it was planned with)."""
    if not user_is_scoped(user):
        return None
    return rollout.deployments.filter(scope_filter(user, "tenant__"))


def rollout_reaches_hidden(user, rollout: Rollout) -> bool:
    """True when the rollout also deploys to tenants ``user`` does not see (one query)."""
    if not user_is_scoped(user):
        return False
    counts = rollout.deployments.aggregate(
        every=Count("id"), mine=Count("id", filter=scope_filter(user, "tenant__"))
    )
    return counts["every"] != counts["mine"]


def target_refusal(user, target: Target) -> str:
    """Why ``user`` may not start a rollout to ``target``, or "" when they may.

    A scoped user names their tenants one by one: "all", rings and tags select from the
    whole fleet, so they could reach tenants the user does not see.
    """
    if user is None or not user_is_scoped(user):
        return ""
    if target.kind != "tenants":
        return (
            "You see only some tenants, so a rollout to every tenant, a ring or a tag is not "
            "yours to start: choose your tenants by name (target: tenants)."
        )
    wanted = {str(v) for v in target.values}
    seen = set(visible_tenants(user).filter(slug__in=wanted).values_list("slug", flat=True))
    # Named the same whether the tenant exists or not: nothing is confirmed to them.
    hidden = sorted(wanted - seen)
    if hidden:
        return f"Not among the tenants you may see: {', '.join(hidden)}."
    return ""

"""{% load fleet %}: the fleet page's summary line and its open rollouts.

A tag rather than view code: the tenant list's view belongs to the tenant pages, and the
summary needs only what it already gives the template (status counts, health counts)
plus one query for the rollouts in progress.
"""

from __future__ import annotations

from django import template

from tenants.models import TenantStatus

register = template.Library()


@register.simple_tag
def fleet_summary(counts: dict | None, health_counts: dict | None) -> dict:
    """{"total", "statuses": [(value, label, n)], "health": [(level, n)]}: offboarded
    tenants are counted apart (the list leaves them out unless asked)."""
    counts = counts or {}
    statuses = [
        (value, label.lower(), counts[value])
        for value, label in TenantStatus.choices
        if counts.get(value) and value != TenantStatus.OFFBOARDED
    ]
    return {
        "total": sum(n for _, _, n in statuses),
        "statuses": statuses,
        "offboarded": counts.get(TenantStatus.OFFBOARDED, 0),
        "health": [(level, n) for level, n in (health_counts or {}).items()],
    }


@register.simple_tag(takes_context=True)
def open_rollouts(context, limit: int = 3) -> list:
    """The rollouts in progress (running, paused, halted, cancelling), newest first; for a
    user limited to some tenants, those reaching their tenants, counted over those only.
    Each gets ``tenant_count``."""
    from django.db.models import Count

    from deployments.models import ROLLOUT_OPEN, Rollout
    from deployments.rollout_scope import visible_rollouts
    from tenants.scope import scope_filter, user_is_scoped

    user = context["request"].user
    rows = visible_rollouts(user, Rollout.objects.filter(status__in=ROLLOUT_OPEN))
    scoped = user_is_scoped(user)
    if scoped:
        mine = scope_filter(user, "deployments__tenant__")
        rows = rows.annotate(mine=Count("deployments", filter=mine))
    rollouts = list(rows.select_related("release")[:limit])
    for rollout in rollouts:
        rollout.tenant_count = rollout.mine if scoped else sum(rollout.wave_sizes)
    return rollouts

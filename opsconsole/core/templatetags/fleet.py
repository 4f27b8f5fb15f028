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


@register.simple_tag
def open_rollouts(limit: int = 3) -> list:
    """The rollouts in progress (running, paused, halted, cancelling), newest first."""
    from deployments.models import ROLLOUT_OPEN, Rollout

    return list(Rollout.objects.filter(status__in=ROLLOUT_OPEN).select_related("release")[:limit])


@register.filter
def length_sum(values) -> int:
    """{{ rollout.wave_sizes|length_sum }}: how many tenants a rollout targets."""
    try:
        return sum(int(v) for v in values)
    except (TypeError, ValueError):
        return 0

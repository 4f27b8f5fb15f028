"""What the Getting started page says is done already, for the user reading it.

Each step of the walk-through (check the account, choose a release, onboard a tenant,
deploy a release to the fleet) links the page where it is done; when the console already
shows it done, the step links the result instead (the account check, the first tenant, the
last rollout), counted over what this user may see.
"""

from __future__ import annotations

from typing import Any

from opsconsole.jobs.models import Job


def getting_started_context(user) -> dict[str, Any]:
    # Imported here: the core package sits below the apps (as templatetags/fleet.py does).
    from deployments.models import Release
    from deployments.rollout_scope import visible_rollouts
    from tenants.models import TenantStatus
    from tenants.scope import user_is_scoped, visible_jobs, visible_tenants

    tenants = visible_tenants(user).exclude(status=TenantStatus.OFFBOARDED)
    releases = Release.objects.order_by("-created_at", "-id")
    return {
        "account_check": visible_jobs(user, Job.objects.filter(kind="account_check")).first(),
        "release_count": releases.count(),
        # The release a new tenant starts on: the one an operator chose, else the newest.
        "start_release": releases.filter(starts_new_tenants=True).first() or releases.first(),
        "first_tenant": tenants.filter(status=TenantStatus.ACTIVE).order_by("created_at").first()
        or tenants.order_by("created_at").first(),
        "tenant_count": tenants.count(),
        "last_rollout": visible_rollouts(user).select_related("release").order_by("-id").first(),
        "scoped": user_is_scoped(user),
    }

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django_htmx.http import HttpResponseStopPolling

from deployments import rollbacks, rollout_display, rollouts
from deployments.forms import ReleaseForm, RolloutForm
from deployments.models import DeploymentStatus, Release, Rollout, RolloutMethod, RolloutStatus
from deployments.releases import (
    ReleaseRefused,
    release_is_deployed,
    release_register,
    release_start_new_tenants_on,
)
from deployments.rollout_display import preview_wave_rules, start_confirmation
from deployments.rollout_scope import (
    rollout_reaches_hidden,
    rollout_visible,
    target_refusal,
    visible_deployments,
    visible_rollout_or_404,
    visible_rollouts,
)
from deployments.rollouts import RolloutRefused
from opsconsole.accounts.access import POST, operator_required, role_required, viewer_required
from opsconsole.accounts.models import Role
from opsconsole.audit.services import audit_record
from opsconsole.jobs.models import Job
from tenants.models import Tenant, TenantStatus
from tenants.scope import refuse_scoped, user_is_scoped, visible_jobs, visible_tenants


@viewer_required
def release_list(request: HttpRequest) -> HttpResponse:
    releases = Release.objects.select_related("created_by")
    return render(request, "deployments/release_list.html", {"releases": releases})


@operator_required
def release_new(request: HttpRequest) -> HttpResponse:
    form = ReleaseForm(request.POST or None, request.FILES or None)
    problems: list[str] = []
    if request.method == "POST" and form.is_valid():
        try:
            release = release_register(form.release_input(), created_by=request.user)
        except ReleaseRefused as exc:
            problems = form.refusal_to_fields(exc.problems)
        else:
            audit_record(
                request=request,
                action="release.register",
                obj=release,
                artifact=release.artifact_summary,
            )
            messages.success(request, f"Release {release.version} registered.")
            return redirect("deployments:release_detail", version=release.version)
    return render(request, "deployments/release_new.html", {"form": form, "problems": problems})


@viewer_required
def release_detail(request: HttpRequest, version: str) -> HttpResponse:
    release = get_object_or_404(Release, version=version)
    return render(
        request,
        "deployments/release_detail.html",
        {
            "release": release,
            "app_settings_json": json.dumps(release.app_settings, indent=2),
            "migrations": release.migrations.all(),
            "rollouts": visible_rollouts(request.user, release.rollouts.all())[:10],
            "deployed": release_is_deployed(release),
            "chosen_for_new_tenants": Release.objects.filter(starts_new_tenants=True)
            .values_list("version", flat=True)
            .first(),
            # The push is the fleet's job: a scoped user sees the release, not its job.
            "push_job": visible_jobs(
                request.user, Job.objects.filter(kind="release_push", subject_id=release.version)
            )
            .prefetch_related("steps")
            .first(),
        },
    )


@role_required(Role.OPERATOR, methods=POST)
def release_start_new_tenants(request: HttpRequest, version: str) -> HttpResponse:
    refuse_scoped(request.user, "The release new tenants start on")
    release = get_object_or_404(Release, version=version)
    release_start_new_tenants_on(release)
    audit_record(request=request, action="release.start_new_tenants", obj=release)
    messages.success(request, f"New tenants start on {release.version} from now on.")
    return redirect("deployments:release_detail", version=release.version)


@operator_required
def rollout_new(request: HttpRequest, version: str) -> HttpResponse:
    """The preview (waves, estimate, downgrades, busy tenants), then Start, then a
    confirmation naming the release and the tenants, then the rollout."""
    release = get_object_or_404(Release, version=version)
    only = None
    if user_is_scoped(request.user):
        only = list(
            visible_tenants(request.user, Tenant.objects.filter(status=TenantStatus.ACTIVE))
            .order_by("slug")
            .values_list("slug", flat=True)
        )
    form = RolloutForm(request.POST or None, only_tenants=only)
    preview = None
    error = ""
    confirm = None
    action = request.POST.get("action") if request.method == "POST" else ""
    if form.is_valid():
        target, strategy = form.get_target(), form.get_strategy()
        # Refused before the preview, which would name tenants the user may not see.
        error = target_refusal(request.user, target)
    if form.is_valid() and not error:
        preview = rollouts.rollout_preview(release, target, strategy)
        # The confirmation names a count: if the target changed since (another tenant
        # onboarded, a field edited behind a non-modal dialog), it asks again.
        confirmed = action == "confirm-start" and request.POST.get("expected_total") == str(
            preview.total
        )
        if action in ("start", "confirm-start") and preview.total and not confirmed:
            confirm = start_confirmation(release, preview)
        elif confirmed:
            try:
                rollout = rollouts.rollout_start(
                    release=release,
                    target=target,
                    strategy=strategy,
                    created_by=request.user,
                    confirm_downgrade=form.cleaned_data["confirm_downgrade"],
                )
            except RolloutRefused as exc:
                error = str(exc)
            else:
                audit_record(
                    request=request,
                    action="rollout.start",
                    obj=rollout,
                    release=release.version,
                    target=target.describe(),
                    tenants=preview.total,
                )
                messages.success(
                    request,
                    format_html(
                        '<a href="{}">Rollout #{}</a> started: {} on {} tenant(s) in {} '
                        "wave(s), the canary first.",
                        reverse("deployments:rollout_detail", args=[rollout.pk]),
                        rollout.pk,
                        release.version,
                        preview.total,
                        len(preview.waves),
                    ),
                )
                return redirect("deployments:rollout_detail", rollout_id=rollout.pk)
        elif action == "start":
            error = f"No tenant to deploy to ({target.describe()})."
    return render(
        request,
        "deployments/rollout_new.html",
        {
            "release": release,
            "form": form,
            "preview": preview,
            "error": error,
            "confirm": confirm,
            "preview_waves": list(zip(preview.waves, preview_wave_rules(preview), strict=True))
            if preview
            else [],
        },
    )


@viewer_required
def rollout_list(request: HttpRequest) -> HttpResponse:
    listed = list(visible_rollouts(request.user).select_related("release", "created_by")[:100])
    counts = rollout_display.list_counts(listed, request.user)
    items = [(rollout, counts[rollout.pk]) for rollout in listed]
    return render(request, "deployments/rollout_list.html", {"items": items})


def _rollout_context(request: HttpRequest, rollout: Rollout) -> dict:
    """The page as this user sees it: a scoped user's tenants only, counted over those.

    Counted and paged by the database: the totals and each wave's progress (one grouped
    query), the first failures, and one page of deployments (``?status=``, ``?wave=``,
    ``?page=``), so a rollout of 20,000 tenants reads as fast as one of 20."""
    mine = visible_deployments(request.user, rollout)
    partial = rollout_reaches_hidden(request.user, rollout)
    counts = rollout_display.rollout_counts(rollout, mine)
    canary_ring0 = rollout_display.canary_is_ring0(rollout, mine)
    for wave, rule in zip(
        counts["waves"],
        rollout_display.wave_rules(rollout.wave_sizes, canary_ring0=canary_ring0),
        strict=True,
    ):
        wave["rule"] = rule
    status = request.GET.get("status", "")
    if status not in DeploymentStatus.values:
        status = ""
    wave = request.GET.get("wave", "")
    wave_n = int(wave) - 1 if wave.isdigit() and 0 < int(wave) <= len(counts["waves"]) else None
    rows = rollout_display.rollout_rows(rollout, mine, status=status, wave=wave_n)
    page = Paginator(rows.values_list("id", flat=True), settings.ROLLOUT_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    shown = rollout_display.rows_in_full(page.object_list)
    rollout_display.annotate_reasons(shown, canary_ring0=canary_ring0)
    return {
        "rollout": rollout,
        "counts": counts,
        "deployments": shown,
        "page": page,
        "status_filter": status,
        "wave_filter": wave_n + 1 if wave_n is not None else "",
        "failures": rollout_display.rollout_failures(rollout, mine)
        if counts["totals"]["failed"]
        else [],
        "phase": rollout_display.rollout_phase(rollout, counts, mine),
        "confirm": rollout_display.action_facts(rollout, counts, mine),
        "summary": rollout_display.rollout_summary(rollout, mine) if rollout.is_finished else None,
        # It also deploys to tenants this user does not see: theirs to watch, not to steer.
        "partial": partial,
    }


@viewer_required
def rollout_detail(request: HttpRequest, rollout_id: int) -> HttpResponse:
    rollout = visible_rollout_or_404(
        request.user, Rollout.objects.select_related("release"), pk=rollout_id
    )
    return render(request, "deployments/rollout_detail.html", _rollout_context(request, rollout))


@viewer_required
def rollout_live(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """The live partial; 286 (stop polling) once the rollout is over."""
    rollout = visible_rollout_or_404(
        request.user, Rollout.objects.select_related("release"), pk=rollout_id
    )
    response = render(
        request, "deployments/rollout_detail.html#live", _rollout_context(request, rollout)
    )
    if rollout.is_finished:
        return HttpResponseStopPolling(response.content)
    return response


_ACTIONS = {
    "pause": rollouts.rollout_pause,
    "resume": rollouts.rollout_resume,
    "cancel": rollouts.rollout_cancel,
    "retry": rollouts.rollout_retry_failed,
}
# Actions that stop deployments or change tenants: done only once confirmed (the dialog of
# templates/includes/confirm.html, or the confirm page without JavaScript).
CONFIRMED_ACTIONS = {"cancel", "retry", "rollback"}


def _link(rollout_id: int) -> str:
    return reverse("deployments:rollout_detail", args=[rollout_id])


@role_required(Role.OPERATOR, visible=rollout_visible, methods=POST)
def rollout_action(request: HttpRequest, rollout_id: int, action: str) -> HttpResponse:
    rollout = get_object_or_404(Rollout.objects.select_related("release"), pk=rollout_id)
    if action not in _ACTIONS and action != "rollback":
        return HttpResponse(status=404)
    if rollout_reaches_hidden(request.user, rollout):
        raise PermissionDenied(
            f"Rollout #{rollout.pk} also deploys to tenants you do not see: only someone who "
            "sees all of them may pause, resume, cancel, retry or roll it back."
        )
    if action in CONFIRMED_ACTIONS and request.POST.get("confirmed") != "yes":
        counts = rollout_display.rollout_counts(rollout)
        return render(
            request,
            "deployments/rollout_confirm.html",
            {
                "rollout": rollout,
                "action": action,
                "facts": rollout_display.action_facts(rollout, counts)[action],
            },
        )
    if action == "rollback":
        try:
            created = rollbacks.rollout_rollback(
                rollout, created_by=request.user, method=request.POST.get("method") or "alias"
            )
        except RolloutRefused as exc:
            messages.error(request, str(exc))
            return redirect("deployments:rollout_detail", rollout_id=rollout.pk)
        audit_record(
            request=request,
            action="rollout.rollback",
            obj=rollout,
            rollbacks=[r.pk for r in created],
            method=created[0].method,
        )
        for back in created:
            messages.success(
                request,
                format_html(
                    '<a href="{}">Rollout #{}</a> rolls {} tenant(s) back to {} (from rollout '
                    "#{}) {}.",
                    _link(back.pk),
                    back.pk,
                    sum(back.wave_sizes),
                    back.release.version,
                    rollout.pk,
                    "by moving their aliases back"
                    if back.method == RolloutMethod.ALIAS
                    else "by deploying it again",
                ),
            )
            for warning in rollbacks.rollback_warnings(rollout, back.release):
                messages.warning(request, warning)
        return redirect("deployments:rollout_detail", rollout_id=created[0].pk)
    before = rollout_display.rollout_counts(rollout)["totals"] if action == "cancel" else None
    done = _ACTIONS[action](rollout)
    audit_record(request=request, action=f"rollout.{action}", obj=rollout, changed=bool(done))
    rollout.refresh_from_db()
    if not done:
        messages.warning(request, f"Nothing to {action}: the rollout is {rollout.status}.")
    elif not request.htmx:
        # Pause and Resume answer htmx with the live region, whose pill says what happened;
        # a message would only surface on some later page.
        messages.success(request, _done_message(rollout, action, done, before))
    if request.htmx:
        return render(
            request, "deployments/rollout_detail.html#live", _rollout_context(request, rollout)
        )
    return redirect("deployments:rollout_detail", rollout_id=rollout.pk)


def _done_message(rollout: Rollout, action: str, done, before: dict | None) -> str:
    link = format_html('<a href="{}">Rollout #{}</a>', _link(rollout.pk), rollout.pk)
    if action == "cancel":
        return format_html(
            "{} is {}: {} pending deployment(s) will not start; {} running finish.",
            link,
            rollout.get_status_display().lower(),
            before["pending"],
            before["running"],
        )
    if action == "retry":
        return format_html("{}: {} failed deployment(s) start again.", link, done)
    if action == "pause":
        return format_html("{} is paused: running deployments finish, none start.", link)
    return format_html("{} runs again.", link)


__all__ = ["RolloutStatus"]

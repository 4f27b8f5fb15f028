"""API tokens in the browser: make one (its value shown on this page once), see when each
was last used, revoke. Members manage their own tokens; admins see and revoke everyone's."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from deployments.models import ApiToken
from opsconsole.accounts.access import POST, role_required, viewer_required
from opsconsole.accounts.models import ROLE_RANK, Role
from opsconsole.api.tokens import (
    MAX_LIFETIME_DAYS,
    TokenRefused,
    api_token_create,
    api_token_revoke,
)
from opsconsole.audit.services import audit_record


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="What uses it",
        help_text="For example ci or add-customer: shown in the audit log beside each change.",
    )
    role = forms.ChoiceField(
        label="Acts as",
        help_text="A token can do at most what you can; give CI no more than it needs.",
    )
    expires_days = forms.IntegerField(
        min_value=1,
        max_value=MAX_LIFETIME_DAYS,
        label="Expires after (days)",
        help_text=f"1 to {MAX_LIFETIME_DAYS}. Make a new token before it expires.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        mine = ROLE_RANK[Role(user.role)]
        self.fields["role"].choices = [
            (r.value, r.label)
            for r in (Role.VIEWER, Role.OPERATOR, Role.ADMIN)
            if ROLE_RANK[r] <= mine
        ]
        self.fields["role"].initial = Role.VIEWER
        self.fields["expires_days"].initial = settings.API_TOKEN_DEFAULT_DAYS


def _tokens(user):
    tokens = ApiToken.objects.select_related("user").order_by("-created_at")
    return tokens if user.has_role(Role.ADMIN) else tokens.filter(user=user)


@never_cache  # the page that shows a new token's value must not be kept by any cache
@viewer_required
def token_list(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None, user=request.user)
    raw = None
    if request.method == "POST" and form.is_valid():
        try:
            token, raw = api_token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                role=form.cleaned_data["role"],
                expires_days=form.cleaned_data["expires_days"],
            )
        except TokenRefused as exc:
            form.add_error(None, str(exc))
        else:
            audit_record(
                request=request,
                action="api_token.create",
                obj=token,
                role=token.role,
                expires_at=token.expires_at.isoformat(),
            )
            form = TokenForm(user=request.user)
    return render(
        request,
        "api/tokens.html",
        {
            "form": form,
            "tokens": _tokens(request.user),
            "raw": raw,
            "now": timezone.now(),
            "nav_section": "tokens",
        },
    )


@role_required(Role.VIEWER, methods=POST)
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = _tokens(request.user).filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    if api_token_revoke(token):
        audit_record(request=request, action="api_token.revoke", obj=token)
        messages.success(request, f"Revoked {token}: it no longer works.")
    else:
        messages.info(request, f"{token} was already revoked.")
    return redirect("tokens:list")

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from opsconsole.accounts.access import admin_required
from opsconsole.accounts.forms import UserCreateForm, UserEditForm
from opsconsole.accounts.models import User
from opsconsole.audit.services import audit_record
from tenants.scope import refuse_scoped, scope_describe, scope_set
from tenants.scope_forms import TenantScopeForm

# Who sees which tenant is the whole console's business: a scoped admin could otherwise
# lift their own limit.
_WHO_SEES_WHAT = "Managing users"


def _save_scope(request: HttpRequest, user: User, form: TenantScopeForm) -> None:
    """Store the user's scope; audited when it changed (what they saw, what they see)."""
    if not form.given():
        return
    before = scope_describe(user)
    scope_set(user=user, scope=form.scope())
    after = scope_describe(user)
    if before != after:
        audit_record(request=request, action="user.scope", obj=user, before=before, after=after)


@admin_required
def user_list(request: HttpRequest) -> HttpResponse:
    refuse_scoped(request.user, _WHO_SEES_WHAT)
    # The scopes in two queries, not two a user (scope_describe reads the cached row).
    users = list(
        User.objects.order_by("username")
        .select_related("tenant_scope")
        .prefetch_related("tenant_scope__tenants")
    )
    for user in users:
        user._tenant_scope_cache = getattr(user, "tenant_scope", None)
        user.sees = scope_describe(user)
    return render(request, "accounts/user_list.html", {"users": users})


@admin_required
def user_create(request: HttpRequest) -> HttpResponse:
    refuse_scoped(request.user, _WHO_SEES_WHAT)
    form = UserCreateForm(request.POST or None)
    scope_form = TenantScopeForm(request.POST or None, prefix="scope")
    if request.method == "POST" and form.is_valid() and scope_form.is_valid():
        with transaction.atomic():
            user = form.save()
            audit_record(request=request, action="user.create", obj=user, role=user.role)
            _save_scope(request, user, scope_form)
        messages.success(request, f"User {user.username} created.")
        return redirect("users:list")
    return render(
        request,
        "accounts/user_form.html",
        {"form": form, "scope_form": scope_form, "title": "New user"},
    )


@admin_required
def user_edit(request: HttpRequest, user_id: int) -> HttpResponse:
    refuse_scoped(request.user, _WHO_SEES_WHAT)
    user = get_object_or_404(User, pk=user_id)
    before = {"role": user.role, "is_active": user.is_active}
    form = UserEditForm(request.POST or None, instance=user)
    scope_form = TenantScopeForm.for_user(user, request.POST or None, prefix="scope")
    if request.method == "POST" and form.is_valid() and scope_form.is_valid():
        if user == request.user and (
            form.cleaned_data["role"] != "admin" or not form.cleaned_data["is_active"]
        ):
            form.add_error(None, "You cannot remove your own admin role or access.")
        elif user == request.user and scope_form.given() and scope_form.scope() is not None:
            form.add_error(None, "You cannot limit the tenants you see yourself.")
        else:
            with transaction.atomic():
                form.save()
                after = {"role": user.role, "is_active": user.is_active}
                audit_record(
                    request=request, action="user.update", obj=user, before=before, after=after
                )
                _save_scope(request, user, scope_form)
            messages.success(request, f"User {user.username} updated.")
            return redirect("users:list")
    return render(
        request,
        "accounts/user_form.html",
        {"form": form, "scope_form": scope_form, "title": f"Edit {user.username}"},
    )

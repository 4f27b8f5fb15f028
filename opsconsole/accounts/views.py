from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from opsconsole.accounts.access import admin_required
from opsconsole.accounts.forms import UserCreateForm, UserEditForm
from opsconsole.accounts.models import User
from opsconsole.audit.services import audit_record


@admin_required
def user_list(request: HttpRequest) -> HttpResponse:
    users = User.objects.order_by("username")
    return render(request, "accounts/user_list.html", {"users": users})


@admin_required
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        audit_record(request=request, action="user.create", obj=user, role=user.role)
        messages.success(request, f"User {user.username} created.")
        return redirect("users:list")
    return render(request, "accounts/user_form.html", {"form": form, "title": "New user"})


@admin_required
def user_edit(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(User, pk=user_id)
    before = {"role": user.role, "is_active": user.is_active}
    form = UserEditForm(request.POST or None, instance=user)
    if request.method == "POST" and form.is_valid():
        if user == request.user and (
            form.cleaned_data["role"] != "admin" or not form.cleaned_data["is_active"]
        ):
            form.add_error(None, "You cannot remove your own admin role or access.")
        else:
            form.save()
            after = {"role": user.role, "is_active": user.is_active}
            audit_record(
                request=request, action="user.update", obj=user, before=before, after=after
            )
            messages.success(request, f"User {user.username} updated.")
            return redirect("users:list")
    return render(
        request, "accounts/user_form.html", {"form": form, "title": f"Edit {user.username}"}
    )

"""Role checks shared by every view.

- not logged in: redirect to the login page;
- logged in but no console role (an outsider): 404, so the console does not even confirm
  that a page or object exists;
- a member limited to some tenants (tenants.scope) who names an object of another tenant:
  404, checked before the role and the method, so neither a 403 nor a 405 tells them the
  object exists;
- a member whose role is too low for a write: 403;
- a method the view does not take: 405 (after the checks above: an outsider gets 404).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed

from opsconsole.accounts.models import Role

View = Callable[..., HttpResponse]
# Raises Http404 when the URL's keyword arguments name something the user may not see.
VisibleCheck = Callable[..., None]
POST = ("POST",)


def role_required(
    role: str,
    *,
    visible: VisibleCheck | None = None,
    methods: tuple[str, ...] | None = None,
) -> Callable[[View], View]:
    """``visible(request, **url_kwargs)`` is the view's scope check (tenants.scope);
    ``methods`` replaces ``require_POST``, which would answer 405 before the checks."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user.has_role(Role.VIEWER):
                raise Http404("No such page.")
            if visible is not None:
                visible(request, **kwargs)
            if methods and request.method not in methods:
                return HttpResponseNotAllowed(methods)
            if not user.has_role(role):
                raise PermissionDenied(f"This needs the {Role(role).label.lower()} role.")
            return view(request, *args, **kwargs)

        wrapped.required_role = role  # type: ignore[attr-defined]
        return wrapped

    return decorator


viewer_required = role_required(Role.VIEWER)
operator_required = role_required(Role.OPERATOR)
admin_required = role_required(Role.ADMIN)

from django.conf import settings

from opsconsole.core.health import broker_status_cached


def console(request):
    user = getattr(request, "user", None)
    context = {
        "sandbox": settings.SANDBOX,
        "aws_region": settings.AWS_REGION,
        "aws_endpoint_url": settings.AWS_ENDPOINT_URL,
        # The navigation's current section. An error page has no resolver match: a
        # template filter given None.url_name raises instead of rendering nothing.
        "nav_section": _section(getattr(request, "resolver_match", None)),
    }
    if user is not None and user.is_authenticated:
        broker = broker_status_cached()
        context["broker_down"] = not broker["ok"]
        context["broker_error"] = broker["error"]
        context["can_operate"] = user.has_role("operator")
        context["can_admin"] = user.has_role("admin")
    return context


def _section(match) -> str:
    if match is None:
        return ""
    return match.namespace or match.url_name or ""

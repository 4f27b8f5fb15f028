from django.conf import settings

from opsconsole.core.health import broker_status_cached


def console(request):
    user = getattr(request, "user", None)
    context = {
        "sandbox": settings.SANDBOX,
        "aws_region": settings.AWS_REGION,
        "aws_endpoint_url": settings.AWS_ENDPOINT_URL,
    }
    if user is not None and user.is_authenticated:
        broker = broker_status_cached()
        context["broker_down"] = not broker["ok"]
        context["broker_error"] = broker["error"]
        context["can_operate"] = user.has_role("operator")
        context["can_admin"] = user.has_role("admin")
    return context

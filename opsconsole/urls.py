from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from opsconsole.api.main import api
from opsconsole.audit.views import audit_list
from opsconsole.core import views as core_views

urlpatterns = [
    path("", core_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico whatever the page says.
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True)),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="accounts/login.html"),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("start/", core_views.getting_started, name="getting_started"),
    path("glossary/", core_views.glossary, name="glossary"),
    path("account/", core_views.account, name="account"),
    path("account/check/", core_views.account_check, name="account_check"),
    path("audit/", audit_list, name="audit"),
    path("users/", include("opsconsole.accounts.urls")),
    path("jobs/", include("opsconsole.jobs.urls")),
    path("webhooks/", include("opsconsole.webhooks.urls")),
    path("aws-accounts/", include("opsconsole.awsaccounts.urls")),
    path("tenants/", include("tenants.urls")),
    path("", include("deployments.urls")),
    path("api/v1/", api.urls),
    path("account/tokens/", include("opsconsole.api.urls")),
]

handler403 = "opsconsole.core.errors.forbidden"
handler404 = "opsconsole.core.errors.not_found"
handler500 = "opsconsole.core.errors.server_error"

from django.urls import path
from django.views.generic import RedirectView

from deployments import schema_views, views

app_name = "deployments"
urlpatterns = [
    path("releases/", views.release_list, name="release_list"),
    path("releases/new/", views.release_new, name="release_new"),
    path("releases/<str:version>/", views.release_detail, name="release_detail"),
    path("releases/<str:version>/deploy/", views.rollout_new, name="rollout_new"),
    path(
        "releases/<str:version>/start-new-tenants/",
        views.release_start_new_tenants,
        name="release_start_new_tenants",
    ),
    path("rollouts/", views.rollout_list, name="rollout_list"),
    path("rollouts/<int:rollout_id>/", views.rollout_detail, name="rollout_detail"),
    path("rollouts/<int:rollout_id>/live/", views.rollout_live, name="rollout_live"),
    path("rollouts/<int:rollout_id>/<str:action>/", views.rollout_action, name="rollout_action"),
    # The nav and the page say "Schemas": the address says so too. The old /migrations/
    # addresses (bookmarks, links in messages) go on working.
    path("schemas/", schema_views.schema_fleet, name="schema_fleet"),
    path("schemas/<slug:slug>/", schema_views.schema_plan, name="schema_plan"),
    path("migrations/", RedirectView.as_view(url="/schemas/", permanent=True)),
    path(
        "migrations/<slug:slug>/",
        RedirectView.as_view(url="/schemas/%(slug)s/", permanent=True),
    ),
]

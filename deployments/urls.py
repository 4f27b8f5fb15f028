from django.urls import path

from deployments import schema_views, views

app_name = "deployments"
urlpatterns = [
    path("releases/", views.release_list, name="release_list"),
    path("releases/<str:version>/", views.release_detail, name="release_detail"),
    path("rollouts/", views.rollout_list, name="rollout_list"),
    path("migrations/", schema_views.schema_fleet, name="schema_fleet"),
    path("migrations/<slug:slug>/", schema_views.schema_plan, name="schema_plan"),
]

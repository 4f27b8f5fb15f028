from django.urls import path

from deployments import api

app_name = "api"
urlpatterns = [
    path("releases/", api.releases, name="releases"),
    path("releases/<str:version>/", api.release_detail, name="release_detail"),
    path("rollouts/", api.rollout_list, name="rollouts"),
    path("rollouts/<int:rollout_id>/", api.rollout_detail, name="rollout_detail"),
    path("rollouts/<int:rollout_id>/<str:action>/", api.rollout_action, name="rollout_action"),
]

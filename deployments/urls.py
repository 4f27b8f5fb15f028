from django.urls import path

from deployments import views

app_name = "deployments"
urlpatterns = [
    path("releases/", views.release_list, name="release_list"),
    path("releases/<str:version>/", views.release_detail, name="release_detail"),
    path("rollouts/", views.rollout_list, name="rollout_list"),
]

from django.urls import path

from opsconsole.jobs import views

app_name = "jobs"
urlpatterns = [
    path("<int:job_id>/", views.job_detail, name="detail"),
    path("<int:job_id>/progress/", views.job_progress, name="progress"),
    path("<int:job_id>/retry/", views.job_retry_view, name="retry"),
    path("<int:job_id>/cancel/", views.job_cancel_view, name="cancel"),
]

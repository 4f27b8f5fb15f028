from django.urls import include, path

from tenants import attachment_views, notification_urls, restore_views, views

app_name = "tenants"
urlpatterns = [
    path("", views.tenant_list, name="list"),
    path("new/", views.tenant_onboard, name="onboard"),
    path("attachments/", attachment_views.fleet_attachments, name="attachments"),
    path(
        "attachments/<int:pk>/remove/",
        attachment_views.attachment_remove,
        name="attachment_remove",
    ),
    path("notifications/", include(notification_urls.fleet_urlpatterns)),
    path("<slug:slug>/", views.tenant_detail, name="detail"),
    path("<slug:slug>/health/", include("tenants.health_urls")),
    path("<slug:slug>/notifications/", include(notification_urls.tenant_urlpatterns)),
    path("<slug:slug>/edit/", views.tenant_edit, name="edit"),
    path("<slug:slug>/drift/", views.tenant_drift, name="drift"),
    path("<slug:slug>/repair/", views.tenant_repair, name="repair"),
    path("<slug:slug>/rotate-password/", views.tenant_rotate_password, name="rotate_password"),
    path("<slug:slug>/suspend/", views.tenant_suspend, name="suspend"),
    path("<slug:slug>/resume/", views.tenant_resume, name="resume"),
    path("<slug:slug>/offboard/", views.tenant_offboard, name="offboard"),
    path("<slug:slug>/restore/", restore_views.tenant_restore, name="restore"),
    path("<slug:slug>/attachments/", attachment_views.tenant_attachment_add, name="attachment_add"),
]

"""Who is notified: included by tenants/urls.py, the tenant's under ``<slug>/notifications/``
and the fleet's under ``notifications/``."""

from django.urls import path

from tenants import notification_views as views

tenant_urlpatterns = [
    path("topic/", views.tenant_topic, name="notifications_topic"),
    path("add/", views.tenant_add, name="notifications_add"),
    path("<int:pk>/remove/", views.tenant_remove, name="notifications_remove"),
    path("refresh/", views.tenant_refresh, name="notifications_refresh"),
]

fleet_urlpatterns = [
    path("", views.fleet, name="fleet_notifications"),
    path("add/", views.fleet_add, name="fleet_notifications_add"),
    path("<int:pk>/remove/", views.fleet_remove, name="fleet_notifications_remove"),
    path("refresh/", views.fleet_refresh, name="fleet_notifications_refresh"),
]

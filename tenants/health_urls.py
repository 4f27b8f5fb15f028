"""The tenant health page, included by tenants/urls.py under ``<slug>/health/``."""

from django.urls import path

from tenants import health_views

urlpatterns = [
    path("", health_views.tenant_health, name="health"),
]

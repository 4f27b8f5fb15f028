from django.urls import path

from opsconsole.awsaccounts import views

app_name = "awsaccounts"
urlpatterns = [
    path("", views.account_list, name="list"),
    path("new/", views.account_create, name="create"),
    path("<slug:name>/", views.account_detail, name="detail"),
    path("<slug:name>/edit/", views.account_edit, name="edit"),
    path("<slug:name>/delete/", views.account_delete, name="delete"),
    path("<slug:name>/check/<str:region>/", views.account_check, name="check"),
]

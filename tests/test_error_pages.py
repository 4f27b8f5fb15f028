"""Unknown URLs and server errors answer in the console's layout for every user: never a
bare "Server Error (500)"; a favicon exists."""

import pytest
from django.test import Client, override_settings
from django.urls import path

from opsconsole import urls as root_urls


def _boom(request):
    raise RuntimeError("boom")


urlpatterns = [*root_urls.urlpatterns, path("boom/", _boom)]
handler404 = root_urls.handler404
handler500 = root_urls.handler500


@pytest.fixture
def clients(client_for, admin_user, viewer_user):
    return {
        "anonymous": Client(),
        "viewer": client_for(viewer_user),
        "admin": client_for(admin_user),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "viewer", "admin"])
@pytest.mark.parametrize("url", ["/no-such-page/", "/tenants/no-such-tenant/", "/jobs/999999/"])
def test_unknown_urls_are_a_404_page_in_the_layout(clients, who, url):
    response = clients[who].get(url)
    if who == "anonymous" and response.status_code == 302:
        assert "/login/" in response["Location"]  # pages behind the login send there first
        return
    assert response.status_code == 404
    page = response.content.decode()
    assert "Not found" in page and "Back to the console" in page
    assert 'class="topbar"' in page  # the console's layout, not a bare page


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="tests.test_error_pages", DEBUG=False)
def test_a_server_error_is_a_page_in_the_layout(client_for, admin_user):
    client = client_for(admin_user)
    client.raise_request_exception = False
    response = client.get("/boom/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "Server error" in page and "Back to the console" in page
    assert 'class="topbar"' in page
    assert "boom" not in page  # the exception's text stays in the log


@pytest.mark.django_db
def test_the_favicon_exists(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    icon = client.get(response["Location"])
    assert icon.status_code == 200

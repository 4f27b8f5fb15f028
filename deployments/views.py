from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from deployments.models import Release
from opsconsole.accounts.access import viewer_required


@viewer_required
def release_list(request: HttpRequest) -> HttpResponse:
    releases = Release.objects.select_related("created_by")
    return render(request, "deployments/release_list.html", {"releases": releases})


@viewer_required
def release_detail(request: HttpRequest, version: str) -> HttpResponse:
    release = get_object_or_404(Release, version=version)
    return render(
        request,
        "deployments/release_detail.html",
        {"release": release, "migrations": release.migrations.all()},
    )


@viewer_required
def rollout_list(request: HttpRequest) -> HttpResponse:
    return render(request, "deployments/rollout_list.html", {})

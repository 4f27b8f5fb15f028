from django.shortcuts import render


def forbidden(request, exception=None):
    return render(
        request,
        "core/error.html",
        {"code": 403, "message": str(exception or "You do not have permission to do this.")},
        status=403,
    )


def not_found(request, exception=None):
    return render(
        request, "core/error.html", {"code": 404, "message": "There is nothing here."}, status=404
    )

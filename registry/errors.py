"""Error pages: JSON for API and model-file URLs, HTML elsewhere."""

from __future__ import annotations

from django.http import JsonResponse
from django.views import defaults

MACHINE_PREFIXES = ("/api/", "/m/")


def not_found(request, exception=None):
    if request.path.startswith(MACHINE_PREFIXES):
        message = (
            str(exception.args[0])
            if exception and exception.args and isinstance(exception.args[0], str)
            else "Not found."
        )
        return JsonResponse({"detail": message}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request, exception=None):
    if request.path.startswith(MACHINE_PREFIXES):
        return JsonResponse({"detail": "The request could not be read (too many files or fields?)."}, status=400)
    return defaults.bad_request(request, exception)


def server_error(request):
    if request.path.startswith(MACHINE_PREFIXES):
        return JsonResponse({"detail": "Internal error; it has been logged."}, status=500)
    return defaults.server_error(request)

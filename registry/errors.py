"""Error pages: JSON for API and model-file URLs, HTML elsewhere."""

from __future__ import annotations

from django.http import JsonResponse
from django.views import defaults

MACHINE_PREFIXES = ("/api/", "/m/")


class Refused(Exception):
    """A request refused in words; ``status`` is the HTTP status to answer
    with. The API's exception handler answers every subclass the same way."""

    default_status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status or self.default_status


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

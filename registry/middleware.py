from __future__ import annotations

import logging

from django.http import JsonResponse

from registry.storage import StorageError

logger = logging.getLogger(__name__)


class ModelFilesMiddleware:
    """Headers for /m/, and a storage outage as a 503 in words, not a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith("/m/"):
            # Lets browser apps on other origins see real transfer sizes and
            # timings of model downloads (resource timing).
            response["Timing-Allow-Origin"] = "*"
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, StorageError):
            logger.warning("storage error on %s: %s", request.path, exception)
            return JsonResponse(
                {"detail": "Model storage is unavailable right now. Try again shortly."},
                status=503,
                headers={"Retry-After": "30"},
            )
        return None

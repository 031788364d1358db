from __future__ import annotations

import logging

from django.http import JsonResponse

from registry.storage import StorageError

logger = logging.getLogger(__name__)


class StorageUnavailableMiddleware:
    """Turn a storage outage into a 503 with words instead of a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, StorageError):
            logger.warning("storage error on %s: %s", request.path, exception)
            return JsonResponse(
                {"detail": "Model storage is unavailable right now. Try again shortly."},
                status=503,
                headers={"Retry-After": "30"},
            )
        return None

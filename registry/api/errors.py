from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from registry.errors import Refused
from registry.storage import StorageError


def _flatten(detail, prefix: str = "") -> list[str]:
    """Field errors as "field: message" lines; list positions are dropped."""
    if isinstance(detail, dict):
        lines = []
        for key, value in detail.items():
            if key == "non_field_errors" or isinstance(key, int):
                lines += _flatten(value, prefix)
            else:
                lines += _flatten(value, f"{prefix}{key}: ")
        return lines
    if isinstance(detail, list):
        return [line for item in detail for line in _flatten(item, prefix)]
    return [f"{prefix}{detail}"]


def exception_handler(exc, context):
    """Every API error is JSON with a readable ``detail`` string; field
    errors are kept under ``errors`` for programs."""
    if isinstance(exc, Refused):
        return Response({"detail": exc.message}, status=exc.status)
    if isinstance(exc, StorageError):
        return Response(
            {"detail": "Storage is unavailable right now; nothing was saved. Try again shortly."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if isinstance(exc, DjangoValidationError):
        return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404) and str(exc):
        exc = exceptions.NotFound(str(exc))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": " ".join(_flatten(exc.detail)), "errors": exc.detail}
    return response

from __future__ import annotations

from corsheaders.signals import check_request_enabled
from django.dispatch import receiver


@receiver(check_request_enabled)
def allow_model_files_from_any_origin(sender, request, **kwargs) -> bool:
    """Model files under /m/ are meant to be loaded by browser apps on any
    origin; access to private ones is decided by token, not by Origin."""
    return request.path.startswith("/m/")

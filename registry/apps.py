from __future__ import annotations

from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from registry import signals  # noqa: F401
        from registry.models import reserved_owner_validator

        # A user's name is the first segment of their model pages' URLs.
        get_user_model()._meta.get_field("username").validators.append(reserved_owner_validator)

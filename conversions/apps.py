from __future__ import annotations

from django.apps import AppConfig


class ConversionsConfig(AppConfig):
    name = "conversions"

"""Sending conversion jobs to the workers, by task name.

The registry and the conversion services both enqueue jobs; neither imports
the Celery tasks module (which imports the services), so there is no cycle.
"""

from __future__ import annotations

from celery import current_app

CONVERT_VERSION = "conversions.tasks.convert_version"
CONVERT_VARIANTS = "conversions.tasks.convert_version_variants"


def enqueue_conversion(version_id: int) -> None:
    current_app.send_task(CONVERT_VERSION, args=(version_id,))


def enqueue_variants(version_id: int) -> None:
    current_app.send_task(CONVERT_VARIANTS, args=(version_id,))

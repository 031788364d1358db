from __future__ import annotations

from celery import shared_task

from conversions import services
from conversions.errors import SystemFailure
from registry.storage import StorageError


@shared_task(
    autoretry_for=(SystemFailure, StorageError),
    retry_backoff=5,
    retry_kwargs={"max_retries": 5},
)
def convert_version(version_id: int) -> None:
    services.convert(version_id)

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import connection

from conversions import sandbox, services
from converter.errors import SystemFailure
from registry.storage import StorageError

logger = logging.getLogger(__name__)


@shared_task(
    autoretry_for=(SystemFailure, StorageError),
    retry_backoff=settings.CONVERSION_RETRY_BASE_SECONDS,
    retry_jitter=False,
    retry_kwargs={"max_retries": 5},
)
def convert_version(version_id: int) -> None:
    services.convert(version_id)


@shared_task(
    autoretry_for=(SystemFailure, StorageError),
    retry_backoff=settings.CONVERSION_RETRY_BASE_SECONDS,
    retry_jitter=False,
    retry_kwargs={"max_retries": 3},
)
def convert_version_variants(version_id: int) -> None:
    services.convert_variants(version_id)


@worker_ready.connect
def start_recovery_sweep(**kwargs) -> None:
    """Every worker looks for jobs whose worker died, now and periodically;
    the broker alone cannot be trusted to redeliver them (the filesystem
    broker never does, Redis only after its visibility timeout)."""

    def sweep() -> None:
        while True:
            try:
                services.recover_stalled()
            except Exception:
                logger.exception("stalled-conversion sweep failed")
            finally:
                connection.close()
            threading.Event().wait(settings.CONVERSION_RECOVERY_INTERVAL)

    threading.Thread(target=sweep, name="recovery-sweep", daemon=True).start()
    # In this (the main) thread: the converter is tied to the thread that
    # starts it (it dies with it, see sandbox._die_with_parent).
    try:
        sandbox.warm_up()
    except sandbox.SandboxUnavailable as exc:
        logger.error("CONVERSIONS WILL FAIL: %s", exc)
    except SystemFailure:
        logger.exception("the warm converter did not start; the first job will try again")

"""The conversion pipeline: upload → sandboxed converter → checks → storage."""

from __future__ import annotations

import io
import logging
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from conversions import archive
from conversions.errors import ConversionError, SystemFailure
from conversions.formats import SAVED_MODEL, detect_format
from conversions.publish import validate_output
from conversions.sandbox import SandboxLimits, run_converter
from registry import storage
from registry.models import Version

logger = logging.getLogger(__name__)


def claim(version_id: int) -> Version | None:
    """Mark a version as converting and count the attempt, or return None
    if there is nothing to do (deleted, already final, out of attempts)."""
    with transaction.atomic():
        version = Version.objects.select_for_update().filter(pk=version_id).first()
        if version is None or version.is_final:
            return None
        version.attempts += 1
        if version.attempts > settings.CONVERSION_MAX_ATTEMPTS:
            _fail(
                version,
                f"The conversion crashed {settings.CONVERSION_MAX_ATTEMPTS} times and was given up. "
                "Upload the file again; if it keeps failing, the model may be too large for this server.",
                Version.Failure.SYSTEM,
            )
            return None
        version.status = Version.Status.CONVERTING
        version.started_at = timezone.now()
        version.save(update_fields=["attempts", "status", "started_at"])
        return version


def _fail(version: Version, message: str, failure: str) -> None:
    version.status = Version.Status.FAILED
    version.error = message
    version.failure = failure
    version.finished_at = timezone.now()
    version.save(update_fields=["status", "error", "failure", "finished_at", "attempts"])


def convert(version_id: int) -> None:
    """Convert one version. User errors end the version as failed; system
    errors are raised for the task to retry, until attempts run out."""
    version = claim(version_id)
    if version is None:
        return
    started = time.monotonic()
    settings.CONVERSION_SCRATCH_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.CONVERSION_SCRATCH_DIR, prefix=f"v{version.pk}-") as scratch:
        try:
            result, model_json, files = _convert_in_sandbox(version, Path(scratch))
            prefix = f"artifacts/{version.uid}/{version.attempts}"
            for item in files:
                with item.local.open("rb") as handle:
                    storage.put_blob(f"{prefix}/{item.path}", handle)
            storage.put_blob(f"{prefix}/model.json", io.BytesIO(model_json))
        except ConversionError as exc:
            version.parity = exc.parity or {}
            version.save(update_fields=["parity"])
            _fail(version, str(exc), Version.Failure.USER)
            return
        except (SystemFailure, storage.StorageError) as exc:
            logger.exception("conversion of %s failed (attempt %s)", version, version.attempts)
            if version.attempts >= settings.CONVERSION_MAX_ATTEMPTS:
                _fail(version, f"Modelport could not finish the conversion: {exc}", Version.Failure.SYSTEM)
                return
            Version.objects.filter(pk=version.pk).update(status=Version.Status.PENDING)
            raise
    version.status = Version.Status.READY
    version.output_format = result["output_format"]
    version.converter_version = str(result.get("converter_version", ""))[:32]
    version.artifact_prefix = prefix
    version.files = [item.as_dict() for item in files]
    version.parity = result["parity"]
    version.finished_at = timezone.now()
    version.conversion_seconds = round(time.monotonic() - started, 3)
    version.error = ""
    version.failure = Version.Failure.NONE
    version.save()


def _convert_in_sandbox(version: Version, scratch: Path):
    upload_path = scratch / "upload"
    with upload_path.open("wb") as handle:
        storage.download_blob(version.upload_key, handle)
    with upload_path.open("rb") as handle:
        input_format = version.requested_format or detect_format(handle)
    Version.objects.filter(pk=version.pk).update(input_format=input_format)
    source = upload_path
    if input_format == SAVED_MODEL:
        unpacked = scratch / "input"
        archive.extract(upload_path, unpacked)
        source = archive.find_saved_model_dir(unpacked)
    output = scratch / "output"
    limits = SandboxLimits(
        timeout_seconds=settings.CONVERSION_TIMEOUT_SECONDS,
        memory_bytes=settings.CONVERSION_MEMORY_BYTES,
        cpu_seconds=settings.CONVERSION_TIMEOUT_SECONDS,
    )
    request = {
        "source": str(source),
        "output": str(output),
        "format": input_format,
        "shard_bytes": settings.WEIGHT_SHARD_BYTES,
        "atol": settings.PARITY_ATOL,
        "rtol": settings.PARITY_RTOL,
    }
    result = run_converter(scratch, request, limits)
    version.input_format = input_format
    model_json, files = validate_output(output, result["output_format"])
    return result, model_json, files

"""The conversion pipeline: upload → sandboxed converter → checks → storage."""

from __future__ import annotations

import logging
import secrets
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from conversions import archive
from conversions.errors import ConversionError, SystemFailure
from conversions.formats import ARCHIVE_FORMATS, KERAS_H5, KERAS_V3, TFJS, detect_format
from conversions.publish import store
from conversions.sandbox import SandboxLimits, run_converter
from registry import storage
from registry.models import Blob, Version
from registry.services import enqueue_variants

logger = logging.getLogger(__name__)
UPLOAD_SUFFIXES = {KERAS_H5: ".h5", KERAS_V3: ".keras"}


def claim(version_id: int) -> Version | None:
    """Take the conversion lease on a version and count the attempt, or
    return None if there is nothing to do: deleted, already final, or being
    converted by a live worker (its lease has not expired)."""
    now = timezone.now()
    with transaction.atomic():
        version = Version.objects.select_for_update().filter(pk=version_id).first()
        if version is None or version.is_final:
            return None
        if version.status == Version.Status.CONVERTING and version.lease_expires_at and version.lease_expires_at > now:
            return None
        version.attempts += 1
        if version.attempts > settings.CONVERSION_MAX_ATTEMPTS:
            _fail(
                version,
                f"The conversion was started {settings.CONVERSION_MAX_ATTEMPTS} times and never finished "
                "(the worker crashed or was stopped each time). Upload the file again; if it keeps failing, "
                "the model may be too large for this server.",
                Version.Failure.SYSTEM,
            )
            return None
        version.status = Version.Status.CONVERTING
        version.started_at = now
        version.lease_expires_at = now + timedelta(seconds=settings.CONVERSION_LEASE_SECONDS)
        version.save(update_fields=["attempts", "status", "started_at", "lease_expires_at"])
        return version


@contextmanager
def holding_lease(version: Version):
    """Renew the version's lease while the block runs, so other workers and
    the stalled-job sweep know this worker is alive."""
    stop = threading.Event()
    period = settings.CONVERSION_LEASE_SECONDS / 3

    def renew() -> None:
        try:
            while not stop.wait(period):
                expires = timezone.now() + timedelta(seconds=settings.CONVERSION_LEASE_SECONDS)
                Version.objects.filter(pk=version.pk, status=Version.Status.CONVERTING).update(lease_expires_at=expires)
        finally:
            connection.close()

    thread = threading.Thread(target=renew, name=f"lease-{version.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def recover_stalled() -> list[int]:
    """Put versions whose worker died (lease expired) back on the queue,
    and re-send pending versions whose message may have been lost."""
    now = timezone.now()
    stalled = Version.objects.filter(status=Version.Status.CONVERTING, lease_expires_at__lt=now)
    lost = Version.objects.filter(
        status=Version.Status.PENDING,
        created_at__lt=now - timedelta(seconds=settings.CONVERSION_PENDING_RESEND_SECONDS),
    )
    ids = sorted(set(stalled.values_list("pk", flat=True)) | set(lost.values_list("pk", flat=True)))
    from conversions.tasks import convert_version

    for version_id in ids:
        logger.warning("re-queueing stalled conversion of version %s", version_id)
        convert_version.delay(version_id)
    return ids


def _fail(version: Version, message: str, failure: str) -> None:
    version.status = Version.Status.FAILED
    version.error = message
    version.failure = failure
    version.finished_at = timezone.now()
    version.lease_expires_at = None
    version.variants = {
        quantization: {"status": "failed", "error": "The version itself failed to convert."}
        if variant.get("status") == "pending"
        else variant
        for quantization, variant in Version.objects.get(pk=version.pk).variants.items()
    }
    version.save(
        update_fields=["status", "error", "failure", "finished_at", "attempts", "lease_expires_at", "variants"]
    )


def convert(version_id: int) -> None:
    """Convert one version (and the variants asked for with it). User errors
    end the version as failed; system errors are raised for the task to
    retry, until attempts run out."""
    version = claim(version_id)
    if version is None:
        return
    started = time.monotonic()
    variants = version.pending_variants()
    with _scratch(version) as scratch:
        try:
            with holding_lease(version):
                result = _run_sandbox(version, scratch, variants)
            prefix = f"artifacts/{version.uid}/{version.attempts}"
            published = store(scratch / "output", result["output_format"], f"{prefix}/model.json", depth=1)
            outcomes = _store_variants(result, scratch, prefix)
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
    with transaction.atomic():
        fresh = Version.objects.select_for_update().get(pk=version.pk)
        fresh.status = Version.Status.READY
        fresh.input_format = version.input_format
        fresh.output_format = result["output_format"]
        fresh.converter_version = str(result.get("converter_version", ""))[:32]
        fresh.model_json_key = published.model_json_key
        fresh.model_json_sha256 = published.model_json_sha256
        fresh.blobs = published.blobs
        fresh.parity = result["parity"]
        fresh.layers = result["layers"]
        fresh.finished_at = timezone.now()
        fresh.conversion_seconds = round(time.monotonic() - started, 3)
        fresh.error = ""
        fresh.failure = Version.Failure.NONE
        fresh.lease_expires_at = None
        fresh.variants = {**fresh.variants, **outcomes}
        fresh.save()
        _record_blobs(fresh, [published.blobs, *(v.get("blobs", []) for v in outcomes.values())])
        if fresh.pending_variants():  # asked for while this job ran
            transaction.on_commit(lambda: enqueue_variants(fresh.pk))


def convert_variants(version_id: int) -> None:
    """Make the pending quantized variants of a ready version."""
    version = Version.objects.filter(pk=version_id, status=Version.Status.READY).first()
    if version is None or not (variants := version.pending_variants()):
        return
    with _scratch(version) as scratch:
        try:
            result = _run_sandbox(version, scratch, variants)
            outcomes = _store_variants(result, scratch, f"artifacts/{version.uid}/variants-{secrets.token_hex(4)}")
        except ConversionError as exc:
            outcomes = {q: {"status": "failed", "error": str(exc)} for q in variants}
    with transaction.atomic():
        fresh = Version.objects.select_for_update().get(pk=version.pk)
        fresh.variants = {**fresh.variants, **outcomes}
        fresh.save(update_fields=["variants"])
        _record_blobs(fresh, [v.get("blobs", []) for v in outcomes.values()])


def _record_blobs(version: Version, blob_lists: list[list[dict]]) -> None:
    rows = {blob["sha256"]: blob["size"] for blobs in blob_lists for blob in blobs}
    Blob.objects.bulk_create(
        [Blob(model_id=version.model_id, sha256=sha, size=size) for sha, size in rows.items()], ignore_conflicts=True
    )


@contextmanager
def _scratch(version: Version):
    settings.CONVERSION_SCRATCH_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.CONVERSION_SCRATCH_DIR, prefix=f"v{version.pk}-") as scratch:
        yield Path(scratch)


def _store_variants(result: dict, scratch: Path, prefix: str) -> dict:
    outcomes = {}
    for quantization, outcome in result["variants"].items():
        if not outcome["ok"]:
            outcomes[quantization] = {"status": "failed", "error": outcome["error"], "parity": outcome["parity"] or {}}
            continue
        key = f"{prefix}/{quantization}/model.json"
        published = store(scratch / f"output-{quantization}", result["output_format"], key, depth=2)
        outcomes[quantization] = {
            "status": "ready",
            "error": "",
            "parity": outcome["parity"],
            "blobs": published.blobs,
            "model_json_key": published.model_json_key,
            "model_json_sha256": published.model_json_sha256,
        }
    return outcomes


def _run_sandbox(version: Version, scratch: Path, variants: list[str]) -> dict:
    upload_path = scratch / "upload"
    with upload_path.open("wb") as handle:
        storage.download_blob(version.upload_key, handle)
    with upload_path.open("rb") as handle:
        input_format = version.requested_format or detect_format(handle)
    version.input_format = input_format
    Version.objects.filter(pk=version.pk).update(input_format=input_format)
    # Keras picks its loader by file extension.
    source = upload_path.rename(upload_path.with_suffix(UPLOAD_SUFFIXES.get(input_format, "")))
    if input_format in ARCHIVE_FORMATS:
        unpacked = scratch / "input"
        archive.extract(source, unpacked)
        source = archive.find_dir_with(unpacked, "model.json" if input_format == TFJS else "saved_model.pb")
    limits = SandboxLimits(
        timeout_seconds=settings.CONVERSION_TIMEOUT_SECONDS,
        memory_bytes=settings.CONVERSION_MEMORY_BYTES,
        cpu_seconds=settings.CONVERSION_TIMEOUT_SECONDS,
    )
    request = {
        "source": str(source),
        "output": str(scratch / "output"),
        "format": input_format,
        "shard_bytes": settings.WEIGHT_SHARD_BYTES,
        "atol": settings.PARITY_ATOL,
        "rtol": settings.PARITY_RTOL,
        "variants": variants,
        "signature": version.signature or "serving_default",
    }
    return run_converter(scratch, request, limits)

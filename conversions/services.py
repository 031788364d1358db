"""The conversion pipeline: upload → sandboxed converter → checks → storage.

The worker never reads an upload itself: it moves the stored file into the
sandbox's job directory as opaque bytes, and publishes only what it has
checked of what the sandbox returned (conversions/results.py, publish.py).

A conversion is owned through its lease: ``claim`` counts the attempt, and
that attempt number is the fencing token. Only the worker holding the
current attempt may publish or fail the version; publishing happens while
the lease is renewed, and a worker that lost its lease discards its work.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from conversions import queue, sandbox
from conversions.publish import store, store_companions
from conversions.results import checked_result, clean_backends
from conversions.sandbox import SandboxLimits, SandboxUnavailable
from converter.errors import ConversionError, SystemFailure
from converter.formats import GRAPH_MODEL, GRAPH_VARIANT
from registry import storage
from registry.models import Version

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker took over this conversion; this one's work is void."""


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
            version.save(update_fields=["attempts"])
            version.fail(
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


class Lease:
    """The lease of one attempt, renewed from a thread while the work runs."""

    def __init__(self, version: Version):
        self.version_id = version.pk
        self.attempt = version.attempts
        self.lost = threading.Event()

    def renew(self) -> bool:
        expires = timezone.now() + timedelta(seconds=settings.CONVERSION_LEASE_SECONDS)
        return bool(
            Version.objects.filter(pk=self.version_id, attempts=self.attempt, status=Version.Status.CONVERTING).update(
                lease_expires_at=expires
            )
        )

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost(f"version {self.version_id} attempt {self.attempt} lost its lease")


@contextmanager
def holding_lease(version: Version):
    """Renew the version's lease while the block runs, so other workers and
    the stalled-job sweep know this worker is alive. A failed renewal (the
    database briefly away) is tried again; a renewal that finds the lease
    taken marks it lost."""
    lease = Lease(version)
    stop = threading.Event()
    period = settings.CONVERSION_LEASE_SECONDS / 3

    def renew() -> None:
        try:
            while not stop.wait(period):
                try:
                    if not lease.renew():
                        lease.lost.set()
                        return
                except DatabaseError:
                    logger.warning("could not renew the lease of version %s; trying again", lease.version_id)
                    connection.close()
        finally:
            connection.close()

    thread = threading.Thread(target=renew, name=f"lease-{version.pk}", daemon=True)
    thread.start()
    try:
        yield lease
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
    for version_id in ids:
        logger.warning("re-queueing stalled conversion of version %s", version_id)
        queue.enqueue_conversion(version_id)
    return ids


def convert(version_id: int) -> None:
    """Convert one version (and the variants asked for with it). User errors
    end the version as failed; system errors are raised for the task to
    retry, until attempts run out."""
    version = claim(version_id)
    if version is None:
        return
    started = time.monotonic()
    attempt = version.attempts
    limits = SandboxLimits.from_settings()
    try:
        with holding_lease(version) as lease, sandbox.job(limits) as job_dir:
            result = _run_sandbox(version, job_dir, version.pending_variants(), limits)
            lease.check()
            has_reference = result["parity"].get("reference") != "none"
            required = settings.BROWSER_BACKENDS_REQUIRED
            backends = _check_in_browsers(job_dir, "", has_reference, required=True) if required else None
            if backends is not None:
                _require_browsers(backends)
            prefix = f"artifacts/{version.uid}/{attempt}"
            published = store(job_dir, "output", result["output_format"], f"{prefix}/model.json", depth=1)
            result["companions"] = store_companions(job_dir, result["companions"], prefix)
            outcomes = _store_variants(result, job_dir, prefix)
            lease.check()
            ready = version.mark_ready(attempt, result, published, outcomes, time.monotonic() - started)
            if ready is None:
                raise LeaseLost(f"version {version.pk} attempt {attempt} lost its lease before publishing")
            if backends is None:  # off the critical path: the version is ready
                Version.objects.filter(pk=ready.pk).update(backends=_pending_browsers())
                backends = _check_in_browsers(job_dir, "", has_reference)
            Version.objects.filter(pk=ready.pk).update(backends=backends)
            _check_variants_in_browsers(ready.pk, job_dir, outcomes)
    except ConversionError as exc:
        version.fail(str(exc), Version.Failure.USER, attempt, parity=exc.parity, **exc.facts)
        return
    except SandboxUnavailable as exc:
        logger.error("conversion of %s refused: %s", version, exc)
        version.fail(f"Modelport could not convert this upload: {exc}", Version.Failure.SYSTEM, attempt)
        return
    except LeaseLost:
        logger.warning("conversion of %s (attempt %s) lost its lease; its work is discarded", version, attempt)
        return
    except (SystemFailure, storage.StorageError):
        logger.exception("conversion of %s failed (attempt %s)", version, attempt)
        if attempt >= settings.CONVERSION_MAX_ATTEMPTS:
            version.fail(
                "Modelport could not finish the conversion (a storage or system error); try again later.",
                Version.Failure.SYSTEM,
                attempt,
            )
            return
        version.release(attempt)
        raise
    if ready.pending_variants():  # asked for while this job ran
        transaction.on_commit(lambda: queue.enqueue_variants(ready.pk))


def convert_variants(version_id: int) -> None:
    """Make the pending quantized variants of a ready version."""
    version = Version.objects.filter(pk=version_id, status=Version.Status.READY).first()
    if version is None or not (variants := version.pending_variants()):
        return
    limits = SandboxLimits.from_settings()
    with sandbox.job(limits) as job_dir:
        try:
            result = _run_sandbox(version, job_dir, variants, limits)
            outcomes = _store_variants(result, job_dir, f"artifacts/{version.uid}/variants-{secrets.token_hex(4)}")
        except ConversionError as exc:
            outcomes = {q: {"status": "failed", "error": str(exc)} for q in variants}
        with transaction.atomic():
            fresh = Version.objects.select_for_update().get(pk=version.pk)
            fresh.variants = {**fresh.variants, **outcomes}
            fresh.save(update_fields=["variants"])
            fresh.record_blobs([v.get("blobs", []) for v in outcomes.values()])
        _check_variants_in_browsers(version.pk, job_dir, outcomes)


def _pending_browsers() -> dict:
    since = timezone.now().isoformat()
    return {name: {"status": "pending", "since": since} for name in settings.BROWSER_BACKENDS}


def _check_variants_in_browsers(version_pk: int, job_dir: Path, outcomes: dict) -> None:
    """The graph variant runs in Chromium too (quantized ones are the same
    graph with rounded weights): its backends go on its variant entry."""
    outcome = outcomes.get(GRAPH_VARIANT) or {}
    if outcome.get("status") != "ready" or not settings.BROWSER_BACKENDS:
        return

    def record(backends: dict) -> None:
        with transaction.atomic():
            fresh = Version.objects.select_for_update().filter(pk=version_pk).first()
            if fresh is not None and GRAPH_VARIANT in fresh.variants:
                fresh.variants = {
                    **fresh.variants,
                    GRAPH_VARIANT: {**fresh.variants[GRAPH_VARIANT], "backends": backends},
                }
                fresh.save(update_fields=["variants"])

    record(_pending_browsers())
    record(_check_in_browsers(job_dir, GRAPH_VARIANT))


def _check_in_browsers(job_dir: Path, variant: str = "", has_reference: bool = True, required: bool = False) -> dict:
    """Run the converted model (or a variant of it) in headless Chromium, in
    the sandbox and job directory it was converted in; per-backend outcomes.
    Never raises after ready; when the check is ``required``, a worker that
    cannot run it raises SandboxUnavailable or SystemFailure (not the upload's fault)."""
    asked = list(settings.BROWSER_BACKENDS)
    if not asked:
        return {}
    if not has_reference:  # what the conversion said, not what its directory holds
        skipped = "There is no TensorFlow reference to compare with (a TF.js graph model upload)."
        return {name: {"status": "skipped", "error": skipped} for name in asked}
    if not Path(settings.BROWSER_CHROMIUM).is_file():
        skipped = f"Chromium ({settings.BROWSER_CHROMIUM}) is not installed on this worker."
        if required:
            raise SandboxUnavailable(skipped)
        return {name: {"status": "skipped", "error": skipped} for name in asked}
    request = {
        "action": "verify-browsers",
        "variant": variant,
        "backends": asked,
        "atol": settings.PARITY_ATOL,
        "rtol": settings.PARITY_RTOL,
        "chromium": settings.BROWSER_CHROMIUM,
        "timeout_seconds": max(10, settings.BROWSER_CHECK_SECONDS - 15),
    }
    try:
        raw = sandbox.run(request, SandboxLimits.for_browsers())
    except ConversionError as exc:
        logger.warning("the browser check failed: %s", exc)
        raw = {"ok": False, "error": str(exc)}
    except Exception as exc:
        if required:
            raise
        logger.exception("the browser check could not run")
        raw = {"ok": False, "error": f"The browser check could not run on this worker ({type(exc).__name__})."}
    return clean_backends(raw, asked)


def _require_browsers(backends: dict) -> None:
    for name, outcome in backends.items():
        if outcome["status"] not in ("passed", "skipped"):
            reason = outcome.get("error") or (
                f"max absolute error {outcome.get('max_abs_error', float('nan')):.3g} is beyond the tolerance"
            )
            raise ConversionError(f"TF.js' {name} backend in Chromium did not reproduce TensorFlow: {reason}")


def _store_variants(result: dict, job_dir: Path, prefix: str) -> dict:
    outcomes = {}
    for quantization, outcome in result["variants"].items():
        if not outcome["ok"]:
            outcomes[quantization] = {"status": "failed", "error": outcome["error"], "parity": outcome["parity"] or {}}
            continue
        key = f"{prefix}/{quantization}/model.json"
        output_format = GRAPH_MODEL if quantization == GRAPH_VARIANT else result["output_format"]
        published = store(job_dir, f"output-{quantization}", output_format, key, depth=2)
        outcomes[quantization] = {
            "status": "ready",
            "error": "",
            "parity": outcome["parity"],
            "blobs": published.blobs,
            "model_json_key": published.model_json_key,
            "model_json_sha256": published.model_json_sha256,
        }
    return outcomes


def _run_sandbox(version: Version, job_dir: Path, variants: list[str], limits: SandboxLimits) -> dict:
    """Hand the upload to the sandbox as opaque bytes and run the converter."""
    with (job_dir / "upload").open("wb") as handle:
        storage.download_blob(version.upload_key, handle)
    if version.companions_upload_key:
        with (job_dir / "companions-upload").open("wb") as handle:
            storage.download_blob(version.companions_upload_key, handle)
    request = {
        "companions_archive": bool(version.companions_upload_key),
        "format": version.requested_format,
        "shard_bytes": settings.WEIGHT_SHARD_BYTES,
        "atol": settings.PARITY_ATOL,
        "rtol": settings.PARITY_RTOL,
        "variants": variants,
        "signature": version.signature or "serving_default",
    }
    return checked_result(sandbox.run(request, limits))

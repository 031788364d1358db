"""A worker killed mid-conversion (kill -9): the job is taken again and the
version ends ready exactly once; a job whose worker keeps dying ends failed."""

from __future__ import annotations

import io
import os
import signal
import time
import uuid

import psutil
import pytest

from conversions.tasks import convert_version
from registry import services, storage
from registry.models import Version
from tests import zoo
from tests.e2e_fixtures import database_url, start_worker, stop_worker

pytestmark = pytest.mark.e2e


@pytest.fixture
def crash_rig(transactional_db, settings, tmp_path, model_storage):
    """Start and kill workers on a private queue with short leases."""
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_QUEUE": queue,
        "MODELPORT_STORAGE_DIR": str(model_storage),
        "S3_BUCKET": "",
        "MODELPORT_CONVERSION_LEASE_SECONDS": "6",
        "MODELPORT_CONVERSION_RECOVERY_INTERVAL": "2",
        "MODELPORT_CONVERSION_MAX_ATTEMPTS": "2",
        "CELERY_VISIBILITY_TIMEOUT": "10",
        "MODELPORT_SCRATCH_DIR": str(tmp_path / "scratch"),
    }
    workers = []

    class Rig:
        log = tmp_path / "workers.log"

        def start(self):
            workers.append(start_worker(env, self.log, queue, "crash"))
            return workers[-1]

        def enqueue(self, version: Version) -> None:
            convert_version.apply_async((version.pk,), queue=queue)

    yield Rig()
    for process in workers:
        if process.poll() is None:
            stop_worker(process)


@pytest.fixture
def pending_version(owner, tmp_path) -> Version:
    """An uploaded model whose conversion has not started (no message sent)."""
    built = zoo.keras2_cnn_h5(tmp_path)
    model = services.create_model(owner, "crashy")
    data = built.path.read_bytes()
    version = Version(model=model, number=1, upload_name="cnn.h5", upload_size=len(data), upload_sha256="x")
    version.upload_key = f"uploads/{version.uid}/upload"
    storage.put_blob(version.upload_key, io.BytesIO(data))
    version.save()
    return version


def wait_for(version: Version, condition, timeout: float, log) -> Version:
    deadline = time.monotonic() + timeout
    while True:
        version.refresh_from_db()
        if condition(version):
            return version
        if time.monotonic() > deadline:
            raise AssertionError(f"version is {version.status} after {timeout}s; workers:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def kill_hard(worker) -> None:
    """kill -9 the worker; its sandboxed converter processes must die too."""
    family = psutil.Process(worker.pid).children(recursive=True)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert alive == [], f"converter processes outlived their worker: {alive}"


def test_worker_killed_mid_conversion_is_retried_and_ends_ready_once(crash_rig, pending_version):
    first = crash_rig.start()
    crash_rig.enqueue(pending_version)
    wait_for(pending_version, lambda v: v.status == "converting", 60, crash_rig.log)
    kill_hard(first)

    crash_rig.start()
    version = wait_for(pending_version, lambda v: v.is_final, 180, crash_rig.log)
    assert version.status == "ready", version.error
    assert version.attempts == 2
    assert version.model_json_key == f"artifacts/{version.uid}/2/model.json"
    assert version.parity["passed"] is True
    assert version.blobs and all(storage.blob_exists(f"blobs/sha256/{blob['sha256']}") for blob in version.blobs)
    assert storage.read_blob(version.model_json_key).startswith(b"{")
    time.sleep(3)  # a late duplicate delivery must not convert it again
    version.refresh_from_db()
    assert (version.status, version.attempts) == ("ready", 2)


def test_job_whose_worker_keeps_dying_fails_after_the_attempt_limit(crash_rig, pending_version):
    worker = crash_rig.start()
    crash_rig.enqueue(pending_version)
    for attempt in (1, 2):
        wait_for(pending_version, lambda v, a=attempt: v.status == "converting" and v.attempts == a, 60, crash_rig.log)
        kill_hard(worker)
        worker = crash_rig.start()
    version = wait_for(pending_version, lambda v: v.is_final, 60, crash_rig.log)
    assert version.status == "failed"
    assert version.failure == "system"
    assert version.error == (
        "The conversion was started 2 times and never finished (the worker crashed or was stopped each time). "
        "Upload the file again; if it keeps failing, the model may be too large for this server."
    )
    assert version.attempts == 3
    assert not version.model_json_key and version.blobs == []  # nothing half-published

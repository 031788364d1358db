"""Only the worker holding a version's lease publishes it; a worker that
lost its lease discards its work; a renewal survives a passing database error."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import OperationalError

from conversions import services
from registry import services as registry_services
from registry.models import Version
from tests import zoo

pytestmark = pytest.mark.e2e


@pytest.fixture
def uploaded(worker_sandbox, transactional_db, owner, monkeypatch, settings, tmp_path):
    monkeypatch.setattr("conversions.queue.enqueue_conversion", lambda version_id: None)
    settings.CONVERSION_LEASE_SECONDS = 3  # renewed every second
    model = registry_services.create_model(owner, "leased")
    with zoo.keras2_cnn_h5(tmp_path).path.open("rb") as handle:
        return registry_services.upload_version(model, owner, handle, "cnn.h5")


def slow_store(monkeypatch, seconds: float, before=lambda: None) -> None:
    real_store = services.store

    def store(*args, **kwargs):
        before()
        time.sleep(seconds)
        return real_store(*args, **kwargs)

    monkeypatch.setattr(services, "store", store)


def test_a_slow_publish_keeps_its_lease_and_no_other_worker_can_take_the_job(uploaded, monkeypatch):
    taken = []
    slow_store(monkeypatch, 5)  # longer than the 3 s lease
    worker = threading.Thread(target=services.convert, args=(uploaded.pk,))
    worker.start()
    while not Version.objects.filter(pk=uploaded.pk, status="converting").exists():
        time.sleep(0.05)
    while worker.is_alive():
        taken.append(services.claim(uploaded.pk))  # another worker's attempt, every 0.5 s
        time.sleep(0.5)
    worker.join()
    uploaded.refresh_from_db()
    assert len(taken) > 8 and set(taken) == {None}
    assert (uploaded.status, uploaded.attempts) == ("ready", 1)


def test_a_worker_that_lost_its_lease_discards_its_work(uploaded, monkeypatch):
    def another_worker_takes_over():
        # As claim() does once this worker's lease has run out.
        Version.objects.filter(pk=uploaded.pk).update(attempts=2)

    slow_store(monkeypatch, 0, before=another_worker_takes_over)
    services.convert(uploaded.pk)
    uploaded.refresh_from_db()
    assert (uploaded.status, uploaded.attempts) == ("converting", 2)  # still the new owner's job
    assert uploaded.model_json_key == "" and uploaded.blobs == []


def test_a_failed_lease_renewal_is_tried_again(uploaded, monkeypatch):
    calls = []
    real_renew = services.Lease.renew

    def renew(lease):
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise OperationalError("the database went away for a moment")
        return real_renew(lease)

    monkeypatch.setattr(services.Lease, "renew", renew)
    slow_store(monkeypatch, 4.5)
    services.convert(uploaded.pk)
    uploaded.refresh_from_db()
    assert len(calls) >= 3
    assert (uploaded.status, uploaded.attempts) == ("ready", 1)

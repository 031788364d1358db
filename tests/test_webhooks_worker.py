"""Webhooks delivered by the real Celery worker after a real conversion: a
receiver that verifies signatures hears version.ready (after one refused
attempt, retried with backoff) and version.failed."""

from __future__ import annotations

import pytest

from tests import zoo
from tests.tokens import api_token
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["disk"], indirect=True)]


def test_the_worker_delivers_signed_version_events_and_retries_a_refusal(registry, owner, settings, tmp_path):
    settings.WEBHOOKS_ALLOW_PRIVATE = "loopback"
    receiver = Receiver()
    try:
        token = api_token(owner)
        api = registry.api(token)
        assert api.post(f"{registry.url}/api/v1/models/", json={"name": "digits"}).status_code == 201
        hook = api.post(
            f"{registry.url}/api/v1/models/alice/digits/webhooks/",
            json={"url": receiver.url, "events": ["version.ready", "version.failed"]},
        ).json()
        receiver.secret = hook["secret"]
        receiver.fail_next = 1

        built = zoo.keras2_cnn_h5(tmp_path)
        with open(built.path, "rb") as handle:
            uploaded = api.post(f"{registry.url}/api/v1/models/alice/digits/versions/", files={"file": handle}).json()
        version = registry.wait_final(api, "alice", "digits", uploaded["number"])
        assert version["status"] == "ready", version["error"]
        first, second = receiver.wait_for(2)
        assert first["failed"] and not second["failed"]
        assert first["id"] == second["id"] and second["verified"] is True
        data = second["payload"]["data"]
        assert second["payload"]["type"] == "version.ready"
        assert (data["version"]["number"], data["version"]["status"]) == (1, "ready")
        assert data["version"]["parity"]["passed"] is True

        broken = tmp_path / "broken.h5"
        broken.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 4096)
        with open(broken, "rb") as handle:
            api.post(f"{registry.url}/api/v1/models/alice/digits/versions/", files={"file": handle})
        failed = receiver.wait_for(3)[2]
        assert failed["verified"] and failed["payload"]["type"] == "version.failed"
        assert failed["payload"]["data"]["version"]["error"]

        log = api.get(f"{registry.url}/api/v1/models/alice/digits/webhooks/{hook['id']}/deliveries/").json()
        assert [(d["event"], d["status"], d["attempts"], d["response_status"]) for d in log] == [
            ("version.failed", "delivered", 1, 200),
            ("version.ready", "delivered", 2, 200),
        ]
    finally:
        receiver.close()

"""Webhooks: made by admins, refused for non-public targets, signed per the
Standard Webhooks spec and checked by a real receiver, retried, logged and
redelivered."""

from __future__ import annotations

import pytest

from registry import services
from tests.org_fixtures import PERSONAS
from tests.test_serving import make_ready_version
from tests.webhook_receiver import Receiver
from webhooks import services as webhooks
from webhooks.models import Delivery, Webhook

pytestmark = pytest.mark.django_db

HOOKS = "/api/v1/models/acme/detector/webhooks/"


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = "loopback"
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    server = Receiver()
    yield server
    server.close()


def make_hook(client, receiver, path=HOOKS, events=("version.ready", "alias.moved", "model.deleted")) -> dict:
    response = client.post(path, {"url": receiver.url, "events": list(events)}, format="json")
    assert response.status_code == 201, response.content
    receiver.secret = response.json()["secret"]
    return response.json()


@pytest.mark.parametrize(("persona", "expected"), list(zip(PERSONAS, [201, 403, 403, 404, 401], strict=True)))
def test_model_admins_make_webhooks(clients, detector, receiver, persona, expected):
    body = {"url": receiver.url, "events": ["version.ready"]}
    assert clients[persona].post(HOOKS, body, format="json").status_code == expected


@pytest.mark.parametrize(("persona", "expected"), list(zip(PERSONAS, [200, 403, 403, 403, 401], strict=True)))
def test_org_admins_see_organisation_webhooks(clients, acme, people, persona, expected):
    assert clients[persona].get("/api/v1/orgs/acme/webhooks/").status_code == expected


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/x", "http://localhost/x", "http://10.1.2.3/x", "http://169.254.169.254/latest/meta-data/",
     "http://[::1]/x", "http://192.168.0.10/x"],
)  # fmt: skip
def test_targets_on_private_networks_are_refused_unless_allowed(clients, detector, settings, url):
    settings.WEBHOOKS_ALLOW_PRIVATE = ""
    response = clients["admin"].post(HOOKS, {"url": url, "events": ["version.ready"]}, format="json")
    assert response.status_code == 400
    assert "is not a public address" in response.json()["detail"]


def test_loopback_allowance_does_not_open_private_networks(clients, detector, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = "loopback"
    response = clients["admin"].post(HOOKS, {"url": "http://10.0.0.1/x", "events": ["alias.moved"]}, format="json")
    assert response.status_code == 400


def test_bad_secrets_and_events_are_refused_in_words(clients, detector, receiver):
    response = clients["admin"].post(
        HOOKS, {"url": receiver.url, "events": ["alias.moved"], "secret": "hunter2!"}, format="json"
    )
    assert response.json() == {
        "detail": "The secret must be a Standard Webhooks secret: 'whsec_' and base64 (or leave it out)."
    }
    response = clients["admin"].post(HOOKS, {"url": receiver.url, "events": ["version.eaten"]}, format="json")
    assert response.status_code == 400


def test_an_alias_move_is_delivered_signed_with_model_version_and_urls(clients, detector, receiver, owner, settings):
    settings.PUBLIC_BASE_URL = "https://models.example"
    hook = make_hook(clients["admin"], receiver)
    services.move_alias(detector, "production", 2, owner)
    delivery = Delivery.objects.get()
    assert webhooks.deliver(delivery) is True
    got = receiver.wait_for(1)[0]
    assert got["verified"] is True and got["id"] == delivery.message_id
    assert got["payload"]["type"] == "alias.moved"
    data = got["payload"]["data"]
    assert data["model"]["full_name"] == "acme/detector"
    assert data["alias"] == {
        "name": "production", "version": 2, "model_url": "https://models.example/m/acme/detector/production/model.json",
    }  # fmt: skip
    assert (data["from_version"], data["version"]["number"]) == (1, 2)
    assert data["version"]["model_url"] == "https://models.example/m/acme/detector/2/model.json"
    log = clients["admin"].get(f"{HOOKS}{hook['id']}/deliveries/").json()
    assert [(d["event"], d["status"], d["response_status"], d["attempts"]) for d in log] == [
        ("alias.moved", "delivered", 200, 1)
    ]


def test_a_forged_signature_fails_verification_at_the_receiver(clients, detector, receiver, owner):
    make_hook(clients["admin"], receiver)
    services.move_alias(detector, "production", 2, owner)
    delivery = Delivery.objects.select_related("webhook").get()
    Webhook.objects.filter(pk=delivery.webhook_id).update(secret=webhooks.new_secret())
    delivery.refresh_from_db()
    webhooks.deliver(Delivery.objects.select_related("webhook").get())
    assert receiver.wait_for(1)[0]["verified"] is False


def test_failures_are_retried_then_marked_failed_and_can_be_redelivered(clients, detector, receiver, owner):
    hook = make_hook(clients["admin"], receiver)
    receiver.fail_next = 5
    services.move_alias(detector, "production", 2, owner)
    delivery = Delivery.objects.select_related("webhook").get()
    assert [webhooks.deliver(delivery) for _ in range(3)] == [False, False, False]
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("failed", 3, 503)
    assert delivery.error == "The receiver answered 503."
    assert [webhooks.retry_delay(n) for n in (1, 2, 3)] == [10, 20, 40]
    receiver.fail_next = 0
    response = clients["admin"].post(f"{HOOKS}{hook['id']}/deliveries/{delivery.uid}/redeliver/")
    assert response.status_code == 202 and response.json()["status"] == "pending"
    delivery.refresh_from_db()
    assert webhooks.deliver(delivery) is True
    ids = {got["id"] for got in receiver.received}
    assert ids == {delivery.message_id}  # the same webhook-id every time, so receivers can drop duplicates


def test_only_the_events_asked_for_are_sent(clients, detector, receiver, owner):
    make_hook(clients["admin"], receiver, events=["version.ready"])
    services.move_alias(detector, "production", 2, owner)
    assert not Delivery.objects.exists()


def test_organisation_hooks_hear_every_model_of_it_and_model_deletion(clients, detector, receiver, owner):
    make_hook(clients["admin"], receiver, path="/api/v1/orgs/acme/webhooks/", events=["model.deleted", "version.ready"])
    other = services.create_model(detector.owner, "other", actor=owner)
    make_ready_version(other, 1)  # made ready outside the conversion path: no event
    assert clients["admin"].delete("/api/v1/models/acme/detector/").status_code == 204
    delivery = Delivery.objects.select_related("webhook").get()
    assert delivery.event == "model.deleted"
    assert webhooks.deliver(delivery)
    assert receiver.wait_for(1)[0]["payload"]["data"]["model"]["full_name"] == "acme/detector"


def test_a_model_hook_outlives_its_model_switched_off(clients, detector, receiver):
    make_hook(clients["admin"], receiver)
    clients["admin"].delete("/api/v1/models/acme/detector/")
    hook = Webhook.objects.get()
    assert hook.active is False and hook.model is None and hook.model_name == "detector"
    assert hook.deliveries.get().event == "model.deleted"


def test_admins_add_remove_and_redeliver_webhooks_on_the_model_page(client, people, detector, receiver, owner):
    client.force_login(people["admin"])
    page = client.post("/acme/detector/webhooks/", {"url": receiver.url, "events": ["alias.moved"]}, follow=True)
    hook = Webhook.objects.get()
    receiver.secret = hook.secret
    assert hook.secret in page.content.decode()  # shown once
    assert hook.secret not in client.get("/acme/detector/").content.decode()
    services.move_alias(detector, "production", 2, owner)
    delivery = Delivery.objects.get()
    assert webhooks.deliver(delivery), delivery.error
    assert "delivered" in client.get("/acme/detector/").content.decode()
    client.post(f"/acme/detector/webhooks/{hook.uid}/deliveries/{delivery.uid}/redeliver/")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    client.post(f"/acme/detector/webhooks/{hook.uid}/delete/")
    assert not Webhook.objects.exists()


def test_writers_see_no_webhooks_and_cannot_add_them_from_the_page(client, people, detector, receiver):
    client.force_login(people["writer"])
    assert 'id="webhooks"' not in client.get("/acme/detector/").content.decode()
    response = client.post("/acme/detector/webhooks/", {"url": receiver.url, "events": ["alias.moved"]})
    assert response.status_code == 404 and not Webhook.objects.exists()

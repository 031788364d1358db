"""Access links: a private model's model.json and its weights, for a browser
app with no header and no token, and nothing else."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from registry import services
from registry.models import AccessLink
from tests.test_serving import SHA, SHARD, make_ready_version

pytestmark = pytest.mark.django_db

LINKS = "/api/v1/models/acme/detector/access-links/"
SHA2 = hashlib.sha256(SHARD[1:] + SHARD[:1]).hexdigest()  # version 2 of acme/detector


def mint(client, **body) -> dict:
    response = client.post(LINKS, {"ref": "1", "ttl_seconds": 600, **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def blob_path(link_url: str, sha: str) -> str:
    """Where tfjs fetches a weight: beside model.json, with model.json's query string."""
    parts = urlsplit(link_url)
    return f"/m/acme/detector/blobs/{sha}?{parts.query}"


def test_a_link_opens_model_json_and_its_weights_with_no_credentials(clients, detector, anon_client):
    link = mint(clients["writer"])
    assert link["model_url"].startswith("http://testserver/m/acme/detector/1/model.json?access=")
    assert link["state"] == "active"
    response = anon_client.get(path_of(link["model_url"]))
    assert response.status_code == 200
    assert response.json()["weightsManifest"][0]["paths"] == [f"../blobs/{SHA}"]
    assert response["Cache-Control"] == "private, no-cache"  # revalidated, so revocation reaches cached copies
    weights = anon_client.get(blob_path(link["model_url"], SHA))
    assert weights.status_code == 200
    assert b"".join(weights.streaming_content) == SHARD


def test_a_link_grants_nothing_else(clients, detector, anon_client):
    link = mint(clients["admin"])
    query = urlsplit(link["model_url"]).query
    refused = {
        f"/m/acme/detector/2/model.json?{query}": 403,
        f"/m/acme/detector/production/model.json?{query}": 403,
        f"/m/acme/detector/1/uint8/model.json?{query}": 403,
        f"/m/acme/detector/1/cut/d/model.json?{query}": 403,
        blob_path(link["model_url"], SHA2): 403,
        f"/api/v1/models/acme/detector/?{query}": 404,
        f"/acme/detector/?{query}": 404,
    }
    for path, status in refused.items():
        assert anon_client.get(path).status_code == status, path
    assert anon_client.get(f"/m/acme/detector/2/model.json?{query}").json() == {
        "detail": "This access link opens 1/model.json of acme/detector only."
    }


def test_a_forged_or_misplaced_link_is_as_if_the_model_did_not_exist(clients, detector, anon_client, owner):
    link = mint(clients["admin"])
    forged = link["model_url"][:-3] + "AAA"
    assert anon_client.get(path_of(forged)).status_code == 404
    other = services.create_model(owner, "other", public=False)
    make_ready_version(other, 1)
    query = urlsplit(link["model_url"]).query
    assert anon_client.get(f"/m/alice/other/1/model.json?{query}").status_code == 404


def test_an_expired_link_is_refused(clients, detector, anon_client):
    link = mint(clients["admin"], ttl_seconds=60)
    AccessLink.objects.filter(uid=link["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = anon_client.get(path_of(link["model_url"]))
    assert response.status_code == 403
    assert response.json()["detail"].startswith("This access link expired at ")
    assert anon_client.get(blob_path(link["model_url"], SHA)).status_code == 403


def test_a_revoked_link_is_refused_at_once(clients, detector, anon_client):
    link = mint(clients["admin"])
    assert clients["writer"].delete(f"{LINKS}{link['id']}/").status_code == 204
    response = anon_client.get(path_of(link["model_url"]))
    assert (response.status_code, response.json()) == (403, {"detail": "This access link was revoked."})
    assert [row["state"] for row in clients["admin"].get(LINKS).json()] == ["revoked"]


def test_a_link_with_origins_works_from_those_origins_only(clients, detector, anon_client):
    link = mint(clients["admin"], origins=["https://app.example"])
    good = anon_client.get(path_of(link["model_url"]), HTTP_ORIGIN="https://app.example")
    assert good.status_code == 200
    assert good["Access-Control-Allow-Origin"] == "https://app.example"
    bad = anon_client.get(path_of(link["model_url"]), HTTP_ORIGIN="https://evil.example")
    assert (bad.status_code, bad.json()) == (403, {"detail": "This access link is not valid on https://evil.example."})
    assert anon_client.get(path_of(link["model_url"])).status_code == 403


def test_a_link_following_an_alias_follows_its_moves(clients, detector, anon_client, owner):
    link = mint(clients["admin"], ref="production")
    assert anon_client.get(path_of(link["model_url"]))["X-Modelport-Version"] == "1"
    assert anon_client.get(path_of(link["model_url"]))["Cache-Control"] == "private, no-cache"
    services.move_alias(detector, "production", 2, owner)
    assert anon_client.get(path_of(link["model_url"]))["X-Modelport-Version"] == "2"
    # A page that loaded model.json just before the move still gets its weights.
    assert anon_client.get(blob_path(link["model_url"], SHA)).status_code == 200
    assert anon_client.get(blob_path(link["model_url"], SHA2)).status_code == 200


def test_minting_checks_the_ref_and_the_lifetime(clients, detector):
    response = clients["admin"].post(LINKS, {"ref": "staging", "ttl_seconds": 60}, format="json")
    assert (response.status_code, response.json()) == (
        400,
        {"detail": "Model 'acme/detector' has no ready version or alias 'staging'."},
    )
    response = clients["admin"].post(LINKS, {"ref": "1", "ttl_seconds": 0}, format="json")
    assert response.json()["detail"] == "ttl_seconds: Ensure this value is greater than or equal to 1."
    body = {"ref": "1", "ttl_seconds": 9, "origins": ["https://app.example/b"]}
    response = clients["admin"].post(LINKS, body, format="json")
    assert response.json()["detail"] == (
        "origins: 'https://app.example/b' is not an origin: use scheme://host[:port] only."
    )

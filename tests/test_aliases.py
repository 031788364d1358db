from __future__ import annotations

import pytest

from registry.models import Alias, AliasMove, Version
from tests.test_serving import SHARD, make_ready_version

pytestmark = pytest.mark.django_db

ALIASES = "/api/v1/models/alice/digits/aliases/"


@pytest.fixture
def three_versions(public_model):
    return [make_ready_version(public_model, n, shard=SHARD[n:] + SHARD[:n]) for n in (1, 2, 3)]


def test_put_creates_then_moves_an_alias_and_serves_it(owner_client, anon_client, three_versions):
    created = owner_client.put(ALIASES + "production/", {"version": 1}, format="json")
    assert created.status_code == 201
    assert created.json()["version"] == 1
    assert created.json()["model_url"] == "http://testserver/m/alice/digits/production/model.json"
    moved = owner_client.put(ALIASES + "production/", {"version": 2}, format="json")
    assert moved.status_code == 200
    response = anon_client.get("/m/alice/digits/production/model.json")
    assert response["X-Modelport-Version"] == "2"
    assert response["Cache-Control"] == "public, no-cache"
    assert response.content == anon_client.get("/m/alice/digits/2/model.json").content


def test_alias_list_includes_automatic_latest(owner_client, anon_client, three_versions):
    owner_client.put(ALIASES + "staging/", {"version": 2}, format="json")
    listed = [(a["name"], a["version"], a["automatic"]) for a in anon_client.get(ALIASES).json()]
    assert listed == [("latest", 3, True), ("staging", 2, False)]


def test_every_move_is_logged_with_who_when_from_and_to(owner_client, three_versions):
    for number in (1, 3, 2):
        owner_client.put(ALIASES + "production/", {"version": number}, format="json")
    owner_client.put(ALIASES + "production/", {"version": 2}, format="json")  # no move, no entry
    log = owner_client.get(ALIASES + "production/log/").json()
    assert [(m["from_version"], m["to_version"], m["moved_by"], m["rollback"]) for m in log] == [
        (3, 2, "alice", False),
        (1, 3, "alice", False),
        (None, 1, "alice", False),
    ]
    assert all(m["moved_at"] for m in log)


def test_rollback_moves_back_in_one_call_and_is_logged(owner_client, anon_client, three_versions):
    owner_client.put(ALIASES + "production/", {"version": 1}, format="json")
    owner_client.put(ALIASES + "production/", {"version": 3}, format="json")
    response = owner_client.post(ALIASES + "production/rollback/")
    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert anon_client.get("/m/alice/digits/production/model.json")["X-Modelport-Version"] == "1"
    newest = owner_client.get(ALIASES + "production/log/").json()[0]
    assert (newest["from_version"], newest["to_version"], newest["rollback"]) == (3, 1, True)


def test_rollback_without_an_earlier_version_is_409(owner_client, three_versions):
    owner_client.put(ALIASES + "production/", {"version": 1}, format="json")
    response = owner_client.post(ALIASES + "production/rollback/")
    assert response.status_code == 409
    assert response.json() == {"detail": "Alias 'production' has no earlier version to roll back to."}


def test_alias_names_are_checked(owner_client, three_versions):
    reserved = owner_client.put(ALIASES + "latest/", {"version": 1}, format="json")
    assert reserved.status_code == 400
    assert reserved.json() == {"detail": "'latest' is reserved and cannot be used as an alias name."}
    numeric = owner_client.put(ALIASES + "7/", {"version": 1}, format="json")
    assert numeric.status_code == 400
    assert numeric.json() == {"detail": "Use 1-50 lowercase letters, digits, '.', '_' or '-', starting with a letter."}


def test_alias_needs_a_ready_existing_version(owner_client, public_model, three_versions):
    Version.objects.create(
        model=public_model, number=4, status=Version.Status.CONVERTING,
        upload_name="x", upload_size=1, upload_sha256="0", upload_key="k",
    )  # fmt: skip
    pending = owner_client.put(ALIASES + "production/", {"version": 4}, format="json")
    assert pending.status_code == 409
    assert pending.json() == {"detail": "Version 4 is converting; only a ready version can be aliased."}
    missing = owner_client.put(ALIASES + "production/", {"version": 9}, format="json")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Model 'alice/digits' has no version 9."}
    bad = owner_client.put(ALIASES + "production/", {"version": "two"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["detail"] == "version: A valid integer is required."


def test_outsider_cannot_move_aliases_and_sees_no_private_ones(
    outsider_client, anon_client, owner_client, private_model, three_versions
):
    assert outsider_client.put(ALIASES + "production/", {"version": 1}, format="json").status_code == 403
    assert anon_client.put(ALIASES + "production/", {"version": 1}, format="json").status_code == 401
    assert outsider_client.post(ALIASES + "production/rollback/").status_code == 403
    make_ready_version(private_model, 1)
    owner_client.put("/api/v1/models/alice/secret/aliases/production/", {"version": 1}, format="json")
    assert outsider_client.get("/api/v1/models/alice/secret/aliases/").status_code == 404
    assert outsider_client.get("/m/alice/secret/production/model.json").status_code == 404


def test_deleting_an_alias_is_logged_and_its_url_goes_away(owner_client, anon_client, three_versions):
    owner_client.put(ALIASES + "production/", {"version": 2}, format="json")
    assert owner_client.delete(ALIASES + "production/").status_code == 204
    assert anon_client.get("/m/alice/digits/production/model.json").status_code == 404
    newest = owner_client.get(ALIASES + "production/log/").json()[0]
    assert (newest["from_version"], newest["to_version"]) == (2, None)
    assert owner_client.delete(ALIASES + "production/").status_code == 404


def test_a_load_that_started_before_a_move_finishes_on_its_own_version(owner_client, anon_client, three_versions):
    owner_client.put(ALIASES + "production/", {"version": 1}, format="json")
    manifest = anon_client.get("/m/alice/digits/production/model.json").json()["weightsManifest"]
    owner_client.put(ALIASES + "production/", {"version": 2}, format="json")
    for path in manifest[0]["paths"]:
        blob = anon_client.get(f"/m/alice/digits/production/{path}".replace("/production/../", "/"))
        assert b"".join(blob.streaming_content) == SHARD[1:] + SHARD[:1]  # version 1's weights, not version 2's


def test_alias_names_must_match_in_full(owner_client, three_versions):
    response = owner_client.put(ALIASES + "prod%0A/", {"version": 1}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "Use 1-50 lowercase letters, digits, '.', '_' or '-', starting with a letter."}
    assert not Alias.objects.exists()


def test_deleting_a_model_with_aliases_removes_them_and_their_urls(owner_client, anon_client, three_versions):
    owner_client.put(ALIASES + "production/", {"version": 2}, format="json")
    assert anon_client.get("/m/alice/digits/production/model.json").status_code == 200
    assert owner_client.delete("/api/v1/models/alice/digits/").status_code == 204
    assert not Alias.objects.exists() and not AliasMove.objects.exists()
    assert anon_client.get("/m/alice/digits/production/model.json").status_code == 404
    assert owner_client.get(ALIASES).status_code == 404

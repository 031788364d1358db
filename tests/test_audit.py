"""The audit log: uploads, deletions, alias moves, tokens and links — who, when, what."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.test_organizations import HDF5

pytestmark = pytest.mark.django_db

MODEL = "/api/v1/models/acme/detector/"


def events(client, path: str) -> list[tuple]:
    response = client.get(path)
    assert response.status_code == 200, response.content
    return [(row["actor"], row["action"], row["model"], row["detail"]) for row in response.json()]


def test_what_writers_do_to_a_model_is_in_its_log_with_who_and_what(clients, detector):
    writer = clients["writer"]
    writer.post(MODEL + "versions/", {"file": SimpleUploadedFile("m.h5", HDF5)}, format="multipart")
    writer.put(MODEL + "aliases/production/", {"version": 2}, format="json")
    writer.post(MODEL + "aliases/production/rollback/")
    link = writer.post(MODEL + "access-links/", {"ref": "1", "ttl_seconds": 60}, format="json").json()
    writer.delete(MODEL + f"access-links/{link['id']}/")
    log = events(clients["admin"], MODEL + "audit/")
    assert [(actor, action) for actor, action, _, _ in log] == [
        ("bob", "link.revoked"),
        ("bob", "link.created"),
        ("bob", "alias.rolled_back"),
        ("bob", "alias.moved"),
        ("bob", "version.uploaded"),
        ("alice", "alias.moved"),
        ("alice", "model.created"),
    ]
    assert {model for _, _, model, _ in log} == {"acme/detector"}
    assert log[2][3] == {"alias": "production", "from_version": 2, "to_version": 1}
    assert log[4][3]["version"] == 3 and log[4][3]["upload"]["name"] == "m.h5"


def test_the_token_used_is_named_by_its_prefix(clients, detector, people):
    clients["writer"].put(MODEL + "aliases/staging/", {"version": 1}, format="json")
    row = clients["admin"].get(MODEL + "audit/").json()[0]
    assert row["action"] == "alias.moved"
    token = people["writer"].auth_token_set.get()
    assert row["token"] == token.token_key


def test_an_organisations_log_keeps_deleted_models_members_and_tokens(clients, detector):
    clients["admin"].put("/api/v1/orgs/acme/members/mallory/", {"role": "read"}, format="json")
    clients["admin"].post("/api/v1/tokens/", {"name": "acme-ci", "organization": "acme"}, format="json")
    assert clients["admin"].delete(MODEL).status_code == 204
    log = events(clients["admin"], "/api/v1/orgs/acme/audit/")
    assert [(actor, action, model) for actor, action, model, _ in log[:3]] == [
        ("alice", "model.deleted", "acme/detector"),
        ("alice", "token.created", None),
        ("alice", "member.set", None),
    ]
    assert log[2][3] == {"member": "mallory", "role": "read", "previous_role": None}
    assert log[1][3]["token_name"] == "acme-ci"
    assert "token" not in log[1][3]


@pytest.mark.parametrize("persona", ["writer", "reader", "outsider"])
def test_only_admins_see_the_logs(clients, detector, persona):
    assert clients[persona].get("/api/v1/orgs/acme/audit/").status_code == 403
    assert clients[persona].get(MODEL + "audit/").status_code in (403, 404)

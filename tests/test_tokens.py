"""Access tokens people manage themselves: named, scoped, limited to models or
an organisation, expiring, revocable, stored only as a hash."""

from __future__ import annotations

import io
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AccessToken, AuditEvent
from registry import services
from tests.test_serving import make_ready_version

pytestmark = pytest.mark.django_db


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=None)
    client.force_login(user)
    return client


def with_token(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def mint(client, **body) -> dict:
    response = client.post("/api/v1/tokens/", {"name": "ci", **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_new_token_is_shown_once_and_stored_only_as_a_hash(owner):
    created = mint(session_client(owner), scope="write")
    key = created["token"]
    assert key.startswith("mp_") and len(key) == 67
    assert created["prefix"] == key[:15]
    assert (created["scope"], created["models"], created["expires_at"]) == ("write", None, None)
    stored = AccessToken.objects.get(uid=created["id"])
    assert stored.digest != key and key not in {stored.digest, stored.token_key, stored.name}
    listed = session_client(owner).get("/api/v1/tokens/").json()
    assert [row["id"] for row in listed] == [created["id"]]
    assert "token" not in listed[0]
    assert with_token(key).get("/api/v1/tokens/").status_code == 200


def test_a_read_token_can_read_but_not_write(owner, private_model):
    key = mint(session_client(owner), scope="read")["token"]
    client = with_token(key)
    assert client.get("/api/v1/models/alice/secret/").status_code == 200
    response = client.patch("/api/v1/models/alice/secret/", {"description": "x"}, format="json")
    assert (response.status_code, response.json()) == (403, {"detail": "This token is read-only: its scope is 'read'."})
    assert client.post("/api/v1/models/", {"name": "new"}, format="json").status_code == 403


def test_a_token_limited_to_models_sees_and_changes_those_only(owner, private_model, public_model):
    other = services.create_model(owner, "other", public=False)
    key = mint(session_client(owner), models=["alice/secret"])["token"]
    client = with_token(key)
    assert client.get("/api/v1/models/alice/secret/").status_code == 200
    assert client.patch("/api/v1/models/alice/secret/", {"description": "x"}, format="json").status_code == 200
    assert client.get("/api/v1/models/alice/other/").status_code == 404
    assert sorted(m["full_name"] for m in client.get("/api/v1/models/").json()) == ["alice/digits", "alice/secret"]
    # A public model it does not cover stays readable, as for anyone, and not writable.
    response = client.patch("/api/v1/models/alice/digits/", {"description": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "This token ('ci') cannot change 'alice/digits': its scope or limits do not cover it."
    )
    make_ready_version(other, 1)
    assert client.get("/m/alice/other/1/model.json").status_code == 404
    response = client.post("/api/v1/models/", {"name": "new"}, format="json")
    assert response.json() == {"detail": "This token ('ci') cannot create models."}


def test_a_limited_token_grants_nothing_once_its_models_are_gone(owner, private_model):
    key = mint(session_client(owner), models=["alice/secret"])["token"]
    services.delete_model(private_model, owner)
    services.create_model(owner, "fresh", public=False)
    assert with_token(key).get("/api/v1/models/alice/fresh/").status_code == 404


def test_a_token_limited_to_an_organisation_covers_its_models_only(owner, acme, detector, private_model):
    key = mint(session_client(owner), organization="acme")["token"]
    client = with_token(key)
    assert client.get("/api/v1/models/acme/detector/").status_code == 200
    assert client.get("/api/v1/models/alice/secret/").status_code == 404
    assert client.post("/api/v1/models/", {"owner": "acme", "name": "n"}, format="json").status_code == 201
    assert client.post("/api/v1/models/", {"name": "mine"}, format="json").status_code == 403


def test_token_limits_are_checked_when_minting(owner, outsider):
    services.create_model(outsider, "hidden", public=False)
    client = session_client(owner)
    response = client.post("/api/v1/tokens/", {"name": "x", "models": ["mallory/hidden"]}, format="json")
    assert (response.status_code, response.json()["detail"]) == (400, "models: No model 'mallory/hidden'.")
    response = client.post("/api/v1/tokens/", {"name": "x", "organization": "nowhere"}, format="json")
    assert response.json()["detail"] == "organization: You are not a member of 'nowhere'."
    response = client.post("/api/v1/tokens/", {"name": "x", "scope": "admin"}, format="json")
    assert response.json()["detail"] == 'scope: "admin" is not a valid choice.'


def test_a_limited_or_read_token_cannot_mint_tokens(owner, private_model):
    for limits in ({"models": ["alice/secret"]}, {"scope": "read"}):
        key = mint(session_client(owner), **limits)["token"]
        response = with_token(key).post("/api/v1/tokens/", {"name": "escalate"}, format="json")
        assert response.status_code == 403, limits
    assert AccessToken.objects.count() == 2


def test_an_expired_token_is_401_in_words_and_stays_listed_as_expired(owner):
    created = mint(session_client(owner), expires_in_days=1)
    assert created["expires_at"] is not None
    AccessToken.objects.filter(uid=created["id"]).update(expiry=timezone.now() - timedelta(seconds=1))
    response = with_token(created["token"]).get("/api/v1/models/")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("This token expired at ")
    assert session_client(owner).get("/api/v1/tokens/").json()[0]["expired"] is True


def test_last_used_is_recorded(owner):
    created = mint(session_client(owner))
    assert created["last_used_at"] is None
    with_token(created["token"]).get("/api/v1/models/")
    assert AccessToken.objects.get(uid=created["id"]).last_used_at is not None


def test_a_revoked_token_stops_working_at_once(owner):
    created = mint(session_client(owner))
    assert session_client(owner).delete(f"/api/v1/tokens/{created['id']}/").status_code == 204
    response = with_token(created["token"]).get("/api/v1/models/")
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid token."})
    actions = list(AuditEvent.objects.filter(owner=owner).values_list("action", flat=True))
    assert actions == ["token.revoked", "token.created"]


def test_nobody_else_sees_or_revokes_your_tokens(owner, outsider):
    created = mint(session_client(owner))
    assert session_client(outsider).get("/api/v1/tokens/").json() == []
    assert session_client(outsider).delete(f"/api/v1/tokens/{created['id']}/").status_code == 404
    assert APIClient().get("/api/v1/tokens/").status_code == 401


def test_apitoken_command_prints_a_write_token_last(owner, private_model):
    out = io.StringIO()
    call_command("apitoken", "alice", stdout=out)
    key = out.getvalue().splitlines()[-1]
    assert with_token(key).patch("/api/v1/models/alice/secret/", {"description": "x"}, format="json").status_code == 200


def test_plaintext_tokens_from_before_become_hashed_and_keep_working(owner, private_model):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("accounts.migrations.0002_hash_plaintext_tokens")
    old_key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40), user_id integer, created timestamp)")
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s, %s)", [old_key, owner.pk, timezone.now()])
    # The migration's own schema editor, as far as it uses one (SQLite's cannot open inside a test's transaction).
    editor = SimpleNamespace(connection=connection, execute=lambda sql: connection.cursor().execute(sql))
    migration.hash_plaintext_tokens(apps, editor)
    assert "authtoken_token" not in connection.introspection.table_names()
    assert old_key not in {t.digest for t in AccessToken.objects.all()}
    assert with_token(old_key).get("/api/v1/models/alice/secret/").status_code == 200


def test_a_limited_token_reads_nothing_account_wide(owner, private_model, acme):
    for limits in ({"models": ["alice/secret"]}, {"organization": "acme"}):
        client = with_token(mint(session_client(owner), **limits)["token"])
        for path in ("/api/v1/audit/", "/api/v1/tokens/", "/api/v1/orgs/"):
            assert client.get(path).status_code == 403, (limits, path)


def test_tokens_can_be_limited_to_your_own_and_your_organisations_models_only(owner, outsider):
    services.create_model(outsider, "public-thing", public=True)
    response = session_client(owner).post(
        "/api/v1/tokens/", {"name": "x", "models": ["mallory/public-thing"]}, format="json"
    )
    assert response.json()["detail"] == "models: No model 'mallory/public-thing'."
    assert not AuditEvent.objects.filter(owner=outsider, action="token.created").exists()


def test_a_token_made_with_an_expiring_token_expires_no_later(owner):
    parent = mint(session_client(owner), expires_in_days=1)
    child = with_token(parent["token"]).post("/api/v1/tokens/", {"name": "forever"}, format="json").json()
    assert child["expires_at"] is not None and child["expires_at"] <= parent["expires_at"]


def test_rotate_revokes_tokens_carried_over_from_before(owner):
    from registry.management.commands.apitoken import MIGRATED_TOKEN_NAME
    from tests.tokens import api_token

    old = api_token(owner, MIGRATED_TOKEN_NAME)
    call_command("apitoken", "alice", "--rotate", stdout=io.StringIO())
    assert with_token(old).get("/api/v1/models/").status_code == 401

"""What /m/ remembers between writes (registry/readcache.py): every write
that changes an answer is seen by the next request, in this process at once
and in every other one through the read generation."""

from __future__ import annotations

import os
import time

import pytest
from django.db import connection

from accounts.models import AccessToken
from registry import links, readcache
from registry.models import Alias, Model, ReadGeneration
from tests.test_serving import make_ready_version
from tests.tokens import api_token

# Transactions commit here, as in production: the generation changes on commit.
pytestmark = pytest.mark.django_db(transaction=True)

ALIAS_URL = "/m/alice/digits/production/model.json"


@pytest.fixture(autouse=True)
def generation_row():
    """The row a flush of the test database removed (migrations made it)."""
    readcache._new_generation()


def served_version(client, url: str = ALIAS_URL, **headers) -> str | int:
    response = client.get(url, headers=headers)
    return response["X-Modelport-Version"] if response.status_code == 200 else response.status_code


def written_by_another_process(change) -> None:
    """A write this process hears no signal of: ``change()`` without signals,
    then what the writing process does after its commit."""
    change()
    readcache._new_generation()


def test_the_table_name_is_the_models():
    assert ReadGeneration._meta.db_table == readcache.TABLE


def test_alias_moves_are_served_at_once(anon_client, owner_client, public_model):
    for number in (1, 2, 3):
        make_ready_version(public_model, number, shard=bytes([number]) * 1024)
    alias_url = "/api/v1/models/alice/digits/aliases/production/"
    assert owner_client.put(alias_url, {"version": 1}, format="json").status_code in (200, 201)
    assert served_version(anon_client) == "1"
    # Remembered: a change nobody announced is not seen...
    Alias.objects.filter(model=public_model, name="production").update(version=public_model.versions.get(number=3))
    assert served_version(anon_client) == "1"
    # ...a move through the API is, by the very next request.
    assert owner_client.put(alias_url, {"version": 2}, format="json").status_code == 200
    assert served_version(anon_client) == "2"
    assert owner_client.delete(alias_url).status_code == 204
    assert served_version(anon_client) == 404


def test_a_write_in_another_process_is_seen_through_the_generation(anon_client, public_model):
    make_ready_version(public_model, 1)
    make_ready_version(public_model, 2, shard=b"\x01" * 1024)
    Alias.objects.create(model=public_model, name="production", version=public_model.versions.get(number=1))
    assert served_version(anon_client) == "1"
    written_by_another_process(
        lambda: Alias.objects.filter(name="production").update(version=public_model.versions.get(number=2))
    )
    assert served_version(anon_client) == "2"
    written_by_another_process(lambda: Model.objects.filter(pk=public_model.pk).update(public=False))
    assert served_version(anon_client) == 404


def test_revoked_links_and_deleted_tokens_stop_at_once(anon_client, owner, private_model):
    make_ready_version(private_model, 1)
    link = links.mint(private_model, "1", 3600, [], owner)
    url = links.url_path(link)
    assert served_version(anon_client, url) == "1"
    links.revoke(link, owner)
    assert served_version(anon_client, url) == 403

    token = api_token(owner, "reader")
    auth = {"Authorization": f"Token {token}"}
    assert served_version(anon_client, "/m/alice/secret/1/model.json", **auth) == "1"
    AccessToken.objects.filter(user=owner, name="reader").delete()
    assert served_version(anon_client, "/m/alice/secret/1/model.json", **auth) == 404


def test_without_the_generation_row_nothing_is_remembered(anon_client, public_model, monkeypatch):
    reading_the_row = readcache._Listener()
    reading_the_row.pid = os.getpid()  # as if listening had failed: requests read the row
    monkeypatch.setattr(readcache, "_listener", reading_the_row)
    make_ready_version(public_model, 1)
    make_ready_version(public_model, 2, shard=b"\x01" * 1024)
    Alias.objects.create(model=public_model, name="production", version=public_model.versions.get(number=1))
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {readcache.TABLE}")
    assert served_version(anon_client) == "1"
    Alias.objects.filter(name="production").update(version=public_model.versions.get(number=2))
    assert served_version(anon_client) == "2"
    readcache._new_generation()  # a write makes the row again
    assert ReadGeneration.objects.count() == 1


def test_memory_is_bounded(rf, monkeypatch):
    monkeypatch.setattr(readcache, "MAX_ENTRIES", 10)
    request = rf.get("/")
    for i in range(25):
        assert readcache.remember(request, ("n", i), lambda i=i: i) == i
    assert len(readcache._memory.entries) <= 10


def test_on_postgresql_a_notice_from_another_connection_is_heard(anon_client, public_model):
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; elsewhere each request reads the row (tested above)")
    import psycopg

    make_ready_version(public_model, 1)
    make_ready_version(public_model, 2, shard=b"\x01" * 1024)
    Alias.objects.create(model=public_model, name="production", version=public_model.versions.get(number=1))
    assert served_version(anon_client) == "1"
    deadline = time.monotonic() + 10
    while readcache._listener.value is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert readcache._listener.value is not None, "the listener never started listening"
    # Another process: its own connection, its own write, its own notice; nothing of it runs here.
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        version_2 = public_model.versions.get(number=2).pk
        other.execute("UPDATE registry_alias SET version_id = %s WHERE name = 'production'", [version_2])
        other.execute(f"UPDATE {readcache.TABLE} SET value = 42 WHERE id = 1")
        other.execute("SELECT pg_notify(%s, '42')", [readcache.CHANNEL])
    while readcache._listener.value != 42 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert readcache._listener.value == 42
    assert served_version(anon_client) == "2"

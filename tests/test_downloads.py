"""Download counts: one per load of a version's model.json, no addresses kept,
per version and per model over 30 days, never a database write on the request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registry import downloads
from registry.models import DownloadDay
from tests.test_serving import SHA, make_ready_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(public_model):
    return [make_ready_version(public_model, n) for n in (1, 2)]


def test_each_model_json_load_counts_once_for_its_version(anon_client, owner_client, public_model, versions):
    owner_client.put("/api/v1/models/alice/digits/aliases/production/", {"version": 1}, format="json")
    for path in [
        "/m/alice/digits/1/model.json",
        "/m/alice/digits/production/model.json",
        "/m/alice/digits/latest/model.json",
    ]:
        assert anon_client.get(path).status_code == 200
    etag = anon_client.get("/m/alice/digits/1/model.json")["ETag"]
    assert anon_client.get("/m/alice/digits/1/model.json", HTTP_IF_NONE_MATCH=etag).status_code == 304  # a load too
    anon_client.head("/m/alice/digits/1/model.json")  # not a load
    anon_client.get(f"/m/alice/digits/blobs/{SHA}")  # weights are not counted: one file per load
    assert downloads.flush() == 5
    assert {d.version.number: d.count for d in DownloadDay.objects.all()} == {1: 4, 2: 1}
    assert anon_client.get("/api/v1/models/alice/digits/").json()["downloads_30d"] == 5
    listed = anon_client.get("/api/v1/models/alice/digits/versions/").json()
    assert {v["number"]: v["downloads_30d"] for v in listed} == {1: 4, 2: 1}
    assert anon_client.get("/api/v1/models/alice/digits/versions/1/").json()["downloads_30d"] == 4
    page = anon_client.get("/alice/digits/").content.decode()
    assert "5 downloads in the last 30 days" in page


def test_counting_writes_nothing_while_serving(anon_client, versions):
    anon_client.get("/m/alice/digits/1/model.json")  # warm the model.json cache
    with CaptureQueriesContext(connection) as queries:
        anon_client.get("/m/alice/digits/1/model.json")
    assert not [q["sql"] for q in queries.captured_queries if not q["sql"].lstrip().upper().startswith("SELECT")]
    assert downloads.flush() == 2


def test_counts_add_up_across_flushes_and_keep_no_addresses(anon_client, versions):
    anon_client.get("/m/alice/digits/1/model.json", REMOTE_ADDR="203.0.113.9")
    downloads.flush()
    anon_client.get("/m/alice/digits/1/model.json")
    downloads.flush()
    row = DownloadDay.objects.get()
    assert row.count == 2
    assert {field.name for field in DownloadDay._meta.fields} == {"id", "version", "day", "count"}


def test_only_the_last_30_days_count_and_downloads_order_the_search(anon_client, owner, versions):
    from registry import services

    other = services.create_model(owner, "other")
    make_ready_version(other, 1)
    DownloadDay.objects.create(version=versions[0], day=timezone.now().date() - timedelta(days=30), count=100)
    DownloadDay.objects.create(version=versions[0], day=timezone.now().date(), count=3)
    DownloadDay.objects.create(version=other.versions.get(), day=timezone.now().date(), count=7)
    assert anon_client.get("/api/v1/models/alice/digits/").json()["downloads_30d"] == 3
    ordered = [m["full_name"] for m in anon_client.get("/api/v1/models/?ordering=downloads").json()]
    assert ordered == ["alice/other", "alice/digits"]
    assert "7 downloads" in anon_client.get("/?ordering=downloads").content.decode()

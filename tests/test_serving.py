from __future__ import annotations

import gzip
import hashlib
import json
import tempfile
from pathlib import Path

import pytest

from conversions.publish import store
from registry import storage
from registry.models import Blob, Version

pytestmark = pytest.mark.django_db

SHARD = bytes(range(256)) * 4
SHA = hashlib.sha256(SHARD).hexdigest()
# Enough topology that model.json passes the 1 KiB gzip threshold.
TOPOLOGY = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {"name": "d" * 2000}}]}}


def make_ready_version(model, number: int, shard: bytes = SHARD) -> Version:
    """A converted version exactly as the pipeline publishes it."""
    version = Version.objects.create(
        model=model, number=number, status=Version.Status.READY, upload_name="m.h5", upload_size=1,
        upload_sha256="0" * 64, upload_key=f"uploads/{number}", output_format="layers-model",
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as job_dir:
        output = Path(job_dir, "output")
        output.mkdir()
        (output / "group1-shard1of1.bin").write_bytes(shard)
        weights = [{"name": "d/kernel", "shape": [len(shard) // 4], "dtype": "float32"}]
        manifest = [{"paths": ["group1-shard1of1.bin"], "weights": weights}]
        (output / "model.json").write_text(json.dumps({"modelTopology": TOPOLOGY, "weightsManifest": manifest}))
        published = store(Path(job_dir), "output", "layers-model", f"artifacts/{version.uid}/1/model.json", depth=1)
    version.model_json_key = published.model_json_key
    version.model_json_sha256 = published.model_json_sha256
    version.blobs = published.blobs
    version.save()
    for blob in published.blobs:
        Blob.objects.get_or_create(model=model, sha256=blob["sha256"], defaults={"size": blob["size"]})
    return version


def test_numbered_model_json_is_immutable_and_points_at_blobs(anon_client, public_model):
    make_ready_version(public_model, 1)
    response = anon_client.get("/m/alice/digits/1/model.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.json()["weightsManifest"][0]["paths"] == [f"../blobs/{SHA}"]
    assert int(response["Content-Length"]) == len(response.content)


def test_blob_is_streamed_with_length_etag_and_immutable_cache(anon_client, public_model):
    make_ready_version(public_model, 1)
    response = anon_client.get(f"/m/alice/digits/blobs/{SHA}")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == SHARD
    assert response["Content-Length"] == str(len(SHARD))
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response["ETag"] == f'"{SHA}"'
    assert response["Accept-Ranges"] == "bytes"


def test_identical_weights_are_stored_once_and_share_one_url(anon_client, public_model, model_storage):
    make_ready_version(public_model, 1)
    make_ready_version(public_model, 2)
    paths = [anon_client.get(f"/m/alice/digits/{n}/model.json").json()["weightsManifest"][0]["paths"] for n in (1, 2)]
    assert paths[0] == paths[1] == [f"../blobs/{SHA}"]
    assert [p.name for p in (model_storage / "blobs" / "sha256").iterdir()] == [SHA]


def test_blob_range_requests_get_206_with_content_range(anon_client, public_model):
    make_ready_version(public_model, 1)
    response = anon_client.get(f"/m/alice/digits/blobs/{SHA}", HTTP_RANGE="bytes=10-19")
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == SHARD[10:20]
    assert response["Content-Range"] == f"bytes 10-19/{len(SHARD)}"
    assert response["Content-Length"] == "10"
    suffix = anon_client.get(f"/m/alice/digits/blobs/{SHA}", HTTP_RANGE="bytes=-4")
    assert b"".join(suffix.streaming_content) == SHARD[-4:]
    unsatisfiable = anon_client.get(f"/m/alice/digits/blobs/{SHA}", HTTP_RANGE=f"bytes={len(SHARD)}-")
    assert unsatisfiable.status_code == 416
    assert unsatisfiable["Content-Range"] == f"bytes */{len(SHARD)}"


def test_head_gives_headers_without_body(anon_client, public_model):
    make_ready_version(public_model, 1)
    response = anon_client.head(f"/m/alice/digits/blobs/{SHA}")
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(SHARD))
    assert b"".join(response.streaming_content) == b""
    assert anon_client.head("/m/alice/digits/1/model.json").status_code == 200
    assert anon_client.post("/m/alice/digits/1/model.json").status_code == 405


def test_blob_of_another_model_is_404(anon_client, public_model, owner):
    from registry import services

    make_ready_version(public_model, 1)
    services.create_model(owner, "other")
    assert anon_client.get(f"/m/alice/other/blobs/{SHA}").status_code == 404
    assert anon_client.get(f"/m/alice/digits/blobs/{'0' * 64}").status_code == 404


def test_latest_serves_the_newest_ready_version_with_revalidation(anon_client, public_model):
    make_ready_version(public_model, 1)
    make_ready_version(public_model, 2, shard=SHARD[::-1])
    Version.objects.create(
        model=public_model, number=3, status=Version.Status.FAILED,
        upload_name="x", upload_size=1, upload_sha256="0", upload_key="k",
    )  # fmt: skip
    response = anon_client.get("/m/alice/digits/latest/model.json")
    assert response["X-Modelport-Version"] == "2"
    assert response["Cache-Control"] == "public, no-cache"
    reversed_sha = hashlib.sha256(SHARD[::-1]).hexdigest()
    assert response.json()["weightsManifest"][0]["paths"] == [f"../blobs/{reversed_sha}"]


def test_model_json_answers_if_none_match_with_304(anon_client, public_model):
    make_ready_version(public_model, 1)
    etag = anon_client.get("/m/alice/digits/latest/model.json")["ETag"]
    response = anon_client.get("/m/alice/digits/latest/model.json", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response["ETag"] == etag
    blob = anon_client.get(f"/m/alice/digits/blobs/{SHA}", HTTP_IF_NONE_MATCH=f'"{SHA}"')
    assert blob.status_code == 304


def test_model_json_is_gzipped_when_the_client_accepts_it(anon_client, public_model):
    make_ready_version(public_model, 1)
    plain = anon_client.get("/m/alice/digits/1/model.json")
    zipped = anon_client.get("/m/alice/digits/1/model.json", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert zipped["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    assert int(zipped["Content-Length"]) == len(zipped.content) < len(plain.content)
    assert zipped["ETag"] != plain["ETag"]
    assert "Accept-Encoding" in zipped["Vary"]
    again = anon_client.get(
        "/m/alice/digits/1/model.json", HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=zipped["ETag"]
    )
    assert again.status_code == 304


def test_model_files_carry_cors_headers_for_any_origin(anon_client, public_model):
    make_ready_version(public_model, 1)
    for url in ("/m/alice/digits/1/model.json", f"/m/alice/digits/blobs/{SHA}"):
        response = anon_client.get(url, HTTP_ORIGIN="https://app.example")
        assert response["Access-Control-Allow-Origin"] == "https://app.example"
        assert "ETag" in response["Access-Control-Expose-Headers"]
        assert "Content-Length" in response["Access-Control-Expose-Headers"]


def test_preflight_with_authorization_header_is_allowed(anon_client, public_model):
    response = anon_client.options(
        "/m/alice/digits/1/model.json",
        HTTP_ORIGIN="https://app.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )
    assert response.status_code == 200
    assert "authorization" in response["Access-Control-Allow-Headers"]
    assert response["Access-Control-Allow-Origin"] == "https://app.example"


def test_errors_under_m_carry_cors_headers_too(anon_client):
    response = anon_client.get("/m/alice/nope/1/model.json", HTTP_ORIGIN="https://app.example")
    assert response.status_code == 404
    assert response["Access-Control-Allow-Origin"] == "https://app.example"


def test_private_model_files_are_404_without_the_owners_token(
    anon_client, outsider_client, owner_client, private_model
):
    make_ready_version(private_model, 1)
    for client in (anon_client, outsider_client):
        assert client.get("/m/alice/secret/1/model.json").status_code == 404
        assert client.get(f"/m/alice/secret/blobs/{SHA}").status_code == 404
    assert owner_client.get("/m/alice/secret/1/model.json").status_code == 200
    assert owner_client.get(f"/m/alice/secret/blobs/{SHA}").status_code == 200


def test_unready_versions_and_unknown_files_are_404(anon_client, public_model):
    make_ready_version(public_model, 1)
    Version.objects.create(
        model=public_model, number=2, upload_name="x", upload_size=1, upload_sha256="0", upload_key="k"
    )
    assert anon_client.get("/m/alice/digits/2/model.json").status_code == 404
    assert anon_client.get("/m/alice/digits/1/group1-shard1of1.bin").status_code == 404
    assert anon_client.get("/m/alice/digits/production/model.json").status_code == 404
    response = anon_client.get("/m/alice/nope/latest/model.json")
    assert response.status_code == 404
    assert response.json() == {"detail": "No such model."}


def test_storage_outage_is_503_in_words(anon_client, public_model, monkeypatch):
    make_ready_version(public_model, 1)

    def broken(key):
        raise storage.StorageError("connection refused")

    monkeypatch.setattr(storage, "read_blob", broken)
    response = anon_client.get("/m/alice/digits/1/model.json")
    assert response.status_code == 503
    assert response.json() == {"detail": "Model storage is unavailable right now. Try again shortly."}


def test_a_model_can_restrict_the_origins_that_load_it(owner_client, anon_client, public_model):
    make_ready_version(public_model, 1)
    response = owner_client.patch(
        "/api/v1/models/alice/digits/", {"allowed_origins": ["https://shop.example/"]}, format="json"
    )
    assert response.json()["allowed_origins"] == ["https://shop.example"]
    allowed = anon_client.get("/m/alice/digits/1/model.json", HTTP_ORIGIN="https://shop.example")
    assert allowed["Access-Control-Allow-Origin"] == "https://shop.example"
    refused = anon_client.get(f"/m/alice/digits/blobs/{SHA}", HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in refused
    preflight = anon_client.options(
        "/m/alice/digits/1/model.json", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )
    assert "Access-Control-Allow-Origin" not in preflight


def test_allowed_origins_must_be_origins(owner_client, public_model):
    response = owner_client.patch(
        "/api/v1/models/alice/digits/", {"allowed_origins": ["https://shop.example/app"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "allowed_origins: 'https://shop.example/app' is not an origin: use scheme://host[:port] only."
    )


def test_model_files_allow_cross_origin_resource_timing(anon_client, public_model):
    make_ready_version(public_model, 1)
    assert anon_client.get("/m/alice/digits/1/model.json")["Timing-Allow-Origin"] == "*"


def test_private_model_files_are_never_storable_by_shared_caches(owner_client, private_model):
    make_ready_version(private_model, 1)
    assert owner_client.get("/m/alice/secret/1/model.json")["Cache-Control"] == "private, max-age=31536000, immutable"
    assert owner_client.get("/m/alice/secret/latest/model.json")["Cache-Control"] == "private, no-cache"
    assert owner_client.get(f"/m/alice/secret/blobs/{SHA}")["Cache-Control"] == "private, max-age=31536000, immutable"

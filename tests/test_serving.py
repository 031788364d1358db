from __future__ import annotations

import hashlib
import io
import json

import pytest

from registry import storage
from registry.models import Version

pytestmark = pytest.mark.django_db

SHARD = bytes(range(256)) * 4


def make_ready_version(model, number: int, shard: bytes = SHARD) -> Version:
    """A converted version as the pipeline leaves it in storage."""
    version = Version.objects.create(
        model=model, number=number, status=Version.Status.READY, upload_name="m.h5", upload_size=1,
        upload_sha256="0" * 64, upload_key=f"uploads/{number}", output_format="layers-model",
    )  # fmt: skip
    prefix = f"artifacts/{version.uid}/1"
    manifest = [
        {"paths": ["group1-shard1of1.bin"], "weights": [{"name": "w", "shape": [len(shard) // 4], "dtype": "float32"}]}
    ]
    storage.put_blob(f"{prefix}/group1-shard1of1.bin", io.BytesIO(shard))
    storage.put_blob(
        f"{prefix}/model.json", io.BytesIO(json.dumps({"modelTopology": {}, "weightsManifest": manifest}).encode())
    )
    version.artifact_prefix = prefix
    version.files = [{"path": "group1-shard1of1.bin", "size": len(shard), "sha256": hashlib.sha256(shard).hexdigest()}]
    version.save()
    return version


def test_numbered_model_json_is_immutable_json(anon_client, public_model):
    make_ready_version(public_model, 1)
    response = anon_client.get("/m/alice/digits/1/model.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.json()["weightsManifest"][0]["paths"] == ["group1-shard1of1.bin"]


def test_shard_is_streamed_with_length_and_immutable_cache(anon_client, public_model):
    make_ready_version(public_model, 1)
    response = anon_client.get("/m/alice/digits/1/group1-shard1of1.bin")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == SHARD
    assert response["Content-Length"] == str(len(SHARD))
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"


def test_latest_points_weights_into_the_numbered_version(anon_client, public_model):
    make_ready_version(public_model, 1)
    make_ready_version(public_model, 2, shard=SHARD[::-1])
    Version.objects.create(
        model=public_model,
        number=3,
        status=Version.Status.FAILED,
        upload_name="x",
        upload_size=1,
        upload_sha256="0",
        upload_key="k",
    )
    response = anon_client.get("/m/alice/digits/latest/model.json")
    assert response["X-Modelport-Version"] == "2"
    assert response["Cache-Control"] == "public, no-cache"
    assert response.json()["weightsManifest"][0]["paths"] == ["../2/group1-shard1of1.bin"]


def test_latest_model_json_answers_if_none_match_with_304(anon_client, public_model):
    make_ready_version(public_model, 1)
    etag = anon_client.get("/m/alice/digits/latest/model.json")["ETag"]
    response = anon_client.get("/m/alice/digits/latest/model.json", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304


def test_model_files_carry_cors_headers_for_any_origin(anon_client, public_model):
    make_ready_version(public_model, 1)
    response = anon_client.get("/m/alice/digits/1/model.json", HTTP_ORIGIN="https://app.example")
    assert response["Access-Control-Allow-Origin"] == "https://app.example"
    assert "ETag" in response["Access-Control-Expose-Headers"]


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


def test_private_model_files_are_404_without_the_owners_token(
    anon_client, outsider_client, owner_client, private_model
):
    make_ready_version(private_model, 1)
    for client in (anon_client, outsider_client):
        assert client.get("/m/alice/secret/1/model.json").status_code == 404
        assert client.get("/m/alice/secret/1/group1-shard1of1.bin").status_code == 404
    assert owner_client.get("/m/alice/secret/1/model.json").status_code == 200
    assert owner_client.get("/m/alice/secret/1/group1-shard1of1.bin").status_code == 200


def test_unready_versions_and_unknown_files_are_404(anon_client, public_model):
    make_ready_version(public_model, 1)
    Version.objects.create(
        model=public_model, number=2, upload_name="x", upload_size=1, upload_sha256="0", upload_key="k"
    )
    assert anon_client.get("/m/alice/digits/2/model.json").status_code == 404
    assert anon_client.get("/m/alice/digits/1/other.bin").status_code == 404
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

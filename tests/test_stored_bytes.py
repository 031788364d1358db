"""Stored bytes are what was checked, and a numbered URL never changes."""

from __future__ import annotations

import hashlib
import io
import json
import os

import pytest

from conversions.publish import store, store_companions
from converter.errors import ConversionError
from registry import storage
from tests.test_serving import SHARD, make_ready_version
from tests.uploads import h5_like

pytestmark = pytest.mark.django_db


def test_deleting_and_recreating_a_model_never_reuses_a_version_number(owner_client, anon_client, public_model):
    make_ready_version(public_model, 1)
    assert anon_client.get("/m/alice/digits/1/model.json").status_code == 200
    assert owner_client.delete("/api/v1/models/alice/digits/").status_code == 204
    assert owner_client.post("/api/v1/models/", {"name": "digits"}, format="json").status_code == 201
    response = owner_client.post("/api/v1/models/alice/digits/versions/", {"file": h5_like()}, format="multipart")
    assert response.json()["number"] == 2
    assert anon_client.get("/m/alice/digits/1/model.json").status_code == 404  # the old URL stays gone


def write_output(job_dir, shard: bytes = SHARD) -> None:
    output = job_dir / "output"
    output.mkdir(parents=True)
    (output / "group1-shard1of1.bin").write_bytes(shard)
    weights = [{"name": "d/kernel", "shape": [len(shard) // 4], "dtype": "float32"}]
    manifest = [{"paths": ["group1-shard1of1.bin"], "weights": weights}]
    document = {"modelTopology": {"class_name": "Sequential"}, "weightsManifest": manifest}
    (output / "model.json").write_text(json.dumps(document))


def test_a_weight_file_swapped_for_a_link_is_not_followed(tmp_path):
    write_output(tmp_path)
    shard = tmp_path / "output" / "group1-shard1of1.bin"
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * len(SHARD))
    shard.unlink()
    os.symlink(secret, shard)
    with pytest.raises(ConversionError, match="^The converter did not write the weight file group1-shard1of1.bin"):
        store(tmp_path, "output", "layers-model", "artifacts/x/1/model.json", depth=1)


def test_model_json_that_is_a_link_is_not_followed(tmp_path):
    write_output(tmp_path)
    (tmp_path / "output" / "model.json").unlink()
    os.symlink("/etc/passwd", tmp_path / "output" / "model.json")
    with pytest.raises(ConversionError, match="^The converter wrote no model.json"):
        store(tmp_path, "output", "layers-model", "artifacts/x/1/model.json", depth=1)


@pytest.mark.parametrize("planted", ["the file", "its folder"])
def test_a_companion_file_that_is_a_link_is_not_followed(tmp_path, planted):
    job_dir, outside = tmp_path / "job", tmp_path / "outside"
    outside.mkdir()
    # Would pass every companion check: only the link keeps it out.
    (outside / "labels.txt").write_text("a secret of the worker's\n")
    job_dir.mkdir()
    if planted == "the file":
        (job_dir / "companions").mkdir()
        os.symlink(outside / "labels.txt", job_dir / "companions" / "labels.txt")
    else:
        os.symlink(outside, job_dir / "companions")
    with pytest.raises(ConversionError, match="^The converter did not write the companion file labels.txt.$"):
        store_companions(job_dir, ["labels.txt"], "artifacts/x/1")
    assert not storage.blob_exists("artifacts/x/1/files/labels.txt")


def test_what_is_stored_is_the_private_copy_that_was_hashed(tmp_path, monkeypatch):
    write_output(tmp_path)
    shard = tmp_path / "output" / "group1-shard1of1.bin"
    real_put = storage.put_blob_file

    def put_after_a_swap(key, path, sha256):
        shard.write_bytes(b"x" * len(SHARD))  # the sandbox's copy changes after hashing
        real_put(key, path, sha256)

    monkeypatch.setattr(storage, "put_blob_file", put_after_a_swap)
    published = store(tmp_path, "output", "layers-model", "artifacts/x/1/model.json", depth=1)
    (blob,) = published.blobs
    assert blob["sha256"] == hashlib.sha256(SHARD).hexdigest()
    assert storage.read_blob(storage.blob_key(blob["sha256"])) == SHARD


def test_a_corrupt_existing_blob_is_written_again(tmp_path, model_storage):
    sha = hashlib.sha256(SHARD).hexdigest()
    storage.put_blob(storage.blob_key(sha), io.BytesIO(SHARD[:100]))  # truncated, under the right name
    write_output(tmp_path)
    store(tmp_path, "output", "layers-model", "artifacts/x/1/model.json", depth=1)
    assert storage.read_blob(storage.blob_key(sha)) == SHARD


def test_local_writes_are_atomic(model_storage, monkeypatch):
    storage.put_blob("blobs/sha256/abc", io.BytesIO(b"old"))

    class Broken(io.BytesIO):
        def read(self, *args):
            chunk = super().read(*args)
            if not chunk:
                raise OSError("disk went away")
            return chunk

    with pytest.raises(storage.StorageError):
        storage.put_blob("blobs/sha256/abc", Broken(b"new bytes"))
    assert storage.read_blob("blobs/sha256/abc") == b"old"  # never half-written
    assert [p.name for p in (model_storage / "blobs" / "sha256").iterdir()] == ["abc"]  # no temp file left

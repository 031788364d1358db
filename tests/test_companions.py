"""Companion files: a Teachable Machine export's metadata.json (and any
small text or JSON file beside a model) is kept, served beside model.json
with model.json's caching, ETag, CORS and privacy, listed in the API, and
checked: a broken one fails the version in words, a file that cannot be a
companion is skipped and said so."""

from __future__ import annotations

import json
import subprocess
import zipfile

import pytest

from tests.e2e_fixtures import PROJECT_DIR
from tests.test_end_to_end import create_and_upload
from tests.tokens import api_token

pytestmark = pytest.mark.e2e
# Storage-independent: the first test runs on every backend, the rest on local disk.
DISK_ONLY = pytest.mark.parametrize("backend", ["disk"], indirect=True)


def teachable_export(directory):
    """A Teachable Machine image export (model.json, weights.bin, metadata.json)."""
    script = PROJECT_DIR / "tests" / "browser_app" / "teachable_export.mjs"
    subprocess.run(["node", str(script), str(directory)], cwd=PROJECT_DIR, check=True, capture_output=True)
    return directory


def zipped(folder, target, extra: dict[str, bytes] | None = None, leave_out=()):
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.iterdir()):
            if path.name not in leave_out:
                archive.write(path, path.name)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return target


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return teachable_export(tmp_path_factory.mktemp("teachable") / "tm-my-image-model")


@pytest.fixture
def token(owner) -> str:
    return api_token(owner)


def test_a_teachable_machine_zip_keeps_metadata_json_beside_model_json(registry, token, export, tmp_path):
    version = create_and_upload(registry, token, "pets", zipped(export, tmp_path / "tm.zip"))
    assert version["status"] == "ready", version["error"]
    assert version["input_format"] == "tfjs"
    metadata = (export / "metadata.json").read_bytes()
    [listed] = version["companions"]
    assert listed["name"] == "metadata.json"
    assert listed["url"] == f"{registry.url}/m/alice/pets/1/metadata.json"
    assert listed["content_type"] == "application/json"
    assert listed["size"] == len(metadata)
    assert version["skipped_files"] == []

    anyone = registry.api()
    numbered = anyone.get(listed["url"], headers={"Origin": "https://app.example"})
    assert numbered.status_code == 200
    assert numbered.content == metadata
    assert numbered.headers["Content-Type"] == "application/json"
    assert numbered.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert numbered.headers["ETag"] == f'"{listed["sha256"]}"'
    assert numbered.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert numbered.headers["X-Content-Type-Options"] == "nosniff"
    again = anyone.get(listed["url"], headers={"If-None-Match": numbered.headers["ETag"]})
    assert again.status_code == 304

    alias = anyone.get(f"{registry.url}/m/alice/pets/latest/metadata.json")
    assert (alias.status_code, alias.headers["Cache-Control"]) == (200, "public, no-cache")
    assert json.loads(alias.content)["labels"] == ["Red", "Blue"]
    summary = anyone.get(f"{registry.url}/api/v1/models/alice/pets/versions/1/summary/").json()
    assert [tensor["shape"] for tensor in summary["inputs"]] == [[None, 224, 224, 3]]
    assert summary["outputs"] == [{"name": "sequential_3", "shape": [None, 2], "dtype": "float32"}]
    assert [(row["name"], row["parameters"]) for row in summary["layers"]] == [
        ("sequential_1", 8 * 8 * 3 * 4), ("sequential_3", 4 * 100 + 100 + 100 * 2),
    ]  # fmt: skip
    missing = anyone.get(f"{registry.url}/m/alice/pets/1/labels.txt")
    assert missing.status_code == 404
    assert "no file named 'labels.txt'" in missing.json()["detail"]


@DISK_ONLY
def test_the_export_folder_works_as_well_and_stays_private_when_the_model_is(registry, token, export):
    api = registry.api(token)
    assert api.post(f"{registry.url}/api/v1/models/", json={"name": "secret", "public": False}).status_code == 201
    names = sorted(path.name for path in export.iterdir())
    files = [("files", (name, (export / name).read_bytes())) for name in names]
    paths = [("paths", f"tm-my-image-model/{name}") for name in names]
    response = api.post(f"{registry.url}/api/v1/models/alice/secret/versions/", files=files, data=paths)
    assert response.status_code == 202, response.text
    version = registry.wait_final(api, "alice", "secret", 1)
    assert version["status"] == "ready", version["error"]
    assert [item["name"] for item in version["companions"]] == ["metadata.json"]

    url = f"{registry.url}/m/alice/secret/1/metadata.json"
    assert registry.api().get(url).status_code == 404  # a private model's files do not exist for others
    assert api.get(url).content == (export / "metadata.json").read_bytes()
    assert api.get(url).headers["Cache-Control"] == "private, max-age=31536000, immutable"


@DISK_ONLY
def test_keras_uploads_bring_companions_in_the_same_request(registry, token, tmp_path):
    from tests import zoo

    built = zoo.keras2_cnn_h5(tmp_path)
    api = registry.api(token)
    assert api.post(f"{registry.url}/api/v1/models/", json={"name": "cnn"}).status_code == 201
    labels = "".join(f"class {i}\n" for i in range(5)).encode()
    with open(built.path, "rb") as handle:
        response = api.post(
            f"{registry.url}/api/v1/models/alice/cnn/versions/",
            files=[("file", ("cnn.h5", handle)), ("companions", ("labels.txt", labels))],
        )
    assert response.status_code == 202, response.text
    version = registry.wait_final(api, "alice", "cnn", 1)
    assert version["status"] == "ready", version["error"]
    served = registry.api().get(f"{registry.url}/m/alice/cnn/1/labels.txt")
    assert served.content == labels
    assert served.headers["Content-Type"] == "text/plain; charset=utf-8"

    refused = api.post(
        f"{registry.url}/api/v1/models/alice/cnn/versions/",
        files=[("file", ("cnn.h5", built.path.read_bytes())), ("companions", ("app.js", b"alert(1)"))],
    )
    assert refused.status_code == 400
    assert "'app.js' is not a companion file" in refused.json()["detail"]


@DISK_ONLY
def test_a_broken_companion_fails_the_version_in_words_and_other_files_are_skipped(registry, token, export, tmp_path):
    broken = zipped(export, tmp_path / "broken.zip", {"metadata.json": b"{labels: nope"}, leave_out={"metadata.json"})
    version = create_and_upload(registry, token, "broken", broken)
    assert version["status"] == "failed"
    assert version["error"].startswith("The companion file metadata.json is not valid JSON")

    extra = {"index.html": b"<script>alert(1)</script>", "labels.txt": b"Red\nBlue\n"}
    version = create_and_upload(registry, token, "extra", zipped(export, tmp_path / "extra.zip", extra))
    assert version["status"] == "ready", version["error"]
    assert [item["name"] for item in version["companions"]] == ["labels.txt", "metadata.json"]
    [skipped] = version["skipped_files"]
    assert skipped["name"] == "index.html"
    assert "not a companion file" in skipped["reason"]
    assert registry.api().get(f"{registry.url}/m/alice/extra/1/index.html").status_code == 404

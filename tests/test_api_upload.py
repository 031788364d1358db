from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from converter.formats import NOT_A_MODEL
from registry.models import Version
from tests.uploads import h5_like, zip_of

pytestmark = pytest.mark.django_db

URL = "/api/v1/models/alice/digits/versions/"


def test_upload_creates_pending_version_and_queues_conversion(
    owner_client, public_model, django_capture_on_commit_callbacks, monkeypatch
):
    queued = []
    monkeypatch.setattr("conversions.queue.enqueue_conversion", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(URL, {"file": h5_like()}, format="multipart")
    assert response.status_code == 202
    body = response.json()
    assert (body["number"], body["status"], body["model_url"]) == (1, "pending", None)
    assert body["upload"]["name"] == "model.h5"
    assert body["upload"]["size"] == 520
    version = Version.objects.get()
    assert queued == [version.pk]


def test_version_numbers_count_up(owner_client, public_model):
    numbers = [owner_client.post(URL, {"file": h5_like()}, format="multipart").json()["number"] for _ in range(3)]
    assert numbers == [1, 2, 3]


def test_upload_rejects_empty_file(owner_client, public_model):
    response = owner_client.post(URL, {"file": SimpleUploadedFile("m.h5", b"")}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {"detail": "The uploaded file is empty."}
    assert not Version.objects.exists()


def test_upload_rejects_file_that_is_not_a_model(owner_client, public_model):
    response = owner_client.post(URL, {"file": SimpleUploadedFile("m.h5", b"hello, I am text")}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {"detail": NOT_A_MODEL}


def test_upload_never_opens_archives_in_the_web_process(owner_client, public_model):
    # Whether a zip holds a model is for the sandbox to find out (it fails the version, in words).
    response = owner_client.post(URL, {"file": zip_of({"readme.txt": b"hi", "variables/x": b"1"})}, format="multipart")
    assert response.status_code == 202
    assert response.json()["status"] == "pending"


def test_upload_without_file_field_is_400(owner_client, public_model):
    response = owner_client.post(URL, {}, format="multipart")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "Send either one `file`, or a directory as `files` with `paths` (or a model saved with tf.io.http)."
    )


def test_upload_to_unknown_model_is_404(owner_client):
    response = owner_client.post("/api/v1/models/alice/nope/versions/", {"file": h5_like()}, format="multipart")
    assert response.status_code == 404
    assert response.json() == {"detail": "No model 'alice/nope'."}


def test_upload_without_token_is_401(anon_client, public_model):
    response = anon_client.post(URL, {"file": h5_like()}, format="multipart")
    assert response.status_code == 401


def test_upload_with_wrong_token_is_401(anon_client, public_model):
    anon_client.credentials(HTTP_AUTHORIZATION="Token wrong")
    assert anon_client.post(URL, {"file": h5_like()}, format="multipart").status_code == 401


def test_outsider_upload_to_public_model_is_403(outsider_client, public_model):
    response = outsider_client.post(URL, {"file": h5_like()}, format="multipart")
    assert response.status_code == 403
    assert response.json() == {"detail": "Only alice can change 'alice/digits'."}
    assert not Version.objects.exists()


def test_outsider_upload_to_private_model_is_404(outsider_client, private_model):
    response = outsider_client.post("/api/v1/models/alice/secret/versions/", {"file": h5_like()}, format="multipart")
    assert response.status_code == 404


def test_upload_over_size_limit_is_413(owner_client, public_model, settings):
    settings.MAX_UPLOAD_BYTES = 100
    response = owner_client.post(URL, {"file": h5_like()}, format="multipart")
    assert response.status_code == 413
    assert response.json() == {"detail": "The upload is larger than the 100 byte limit."}
    assert not Version.objects.exists()


def test_unknown_version_is_404(owner_client, public_model):
    response = owner_client.get(URL + "7/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Model 'alice/digits' has no version 7."}


def test_format_override_skips_detection(owner_client, public_model):
    upload = zip_of({"config.json": b"{}"})
    response = owner_client.post(URL, {"file": upload, "format": "saved-model"}, format="multipart")
    assert response.status_code == 202
    assert Version.objects.get().requested_format == "saved-model"


def test_upload_can_ask_for_quantized_variants(owner_client, public_model):
    response = owner_client.post(URL, {"file": h5_like(), "variants": ["float16", "uint8"]}, format="multipart")
    assert response.status_code == 202
    assert [(v["quantization"], v["status"], v["model_url"]) for v in response.json()["variants"]] == [
        ("float16", "pending", None),
        ("uint8", "pending", None),
    ]


def test_upload_rejects_unknown_variant(owner_client, public_model):
    response = owner_client.post(URL, {"file": h5_like(), "variants": ["int4"]}, format="multipart")
    assert response.status_code == 400
    assert response.json()["detail"] == 'variants: "int4" is not a valid choice.'


def test_variant_of_a_failed_version_is_409(owner_client, public_model):
    owner_client.post(URL, {"file": h5_like()}, format="multipart")
    Version.objects.update(status=Version.Status.FAILED)
    response = owner_client.post(URL + "1/variants/", {"quantization": "uint8"}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": "Version 1 failed to convert, so it has no variants."}


def test_graph_variant_of_a_version_that_is_a_graph_model_already_is_409(owner_client, public_model):
    owner_client.post(URL, {"file": h5_like()}, format="multipart")
    Version.objects.update(
        status=Version.Status.READY, input_format=Version.InputFormat.SAVED_MODEL,
        output_format=Version.OutputFormat.GRAPH,
    )  # fmt: skip
    response = owner_client.post(URL + "1/variants/", {"variant": "graph"}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": "A graph variant is made from Keras uploads (.keras or .h5) only."}
    Version.objects.update(input_format=Version.InputFormat.KERAS_V3)
    response = owner_client.post(URL + "1/variants/", {"variant": "graph"}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": "Version 1 is a graph model already."}


def test_variant_request_names_one_variant(owner_client, public_model):
    owner_client.post(URL, {"file": h5_like()}, format="multipart")
    response = owner_client.post(URL + "1/variants/", {}, format="json")
    assert response.status_code == 400
    assert "Send one `variant`" in response.json()["detail"]
    response = owner_client.post(URL + "1/variants/", {"variant": "graph"}, format="json")
    assert response.status_code == 202
    assert [(v["variant"], v["quantization"], v["status"]) for v in response.json()["variants"]] == [
        ("graph", None, "pending")
    ]


def test_outsider_cannot_ask_for_variants(outsider_client, owner_client, public_model):
    owner_client.post(URL, {"file": h5_like()}, format="multipart")
    response = outsider_client.post(URL + "1/variants/", {"quantization": "uint8"}, format="json")
    assert response.status_code == 403


def directory_upload(paths: dict[str, bytes]) -> dict:
    from django.core.files.uploadedfile import SimpleUploadedFile as Upload

    return {
        "files": [Upload(path.rsplit("/", 1)[-1], data) for path, data in paths.items()],
        "paths": list(paths),
    }


def test_a_model_directory_can_be_uploaded_as_its_files(owner_client, public_model):
    import zipfile

    from registry import storage

    payload = directory_upload({"export/saved_model.pb": b"pb", "export/variables/variables.index": b"idx"})
    response = owner_client.post(URL, payload, format="multipart")
    assert response.status_code == 202, response.json()
    assert response.json()["upload"]["name"] == "export.zip"
    stored = zipfile.ZipFile(io.BytesIO(storage.read_blob(Version.objects.get().upload_key)))
    assert sorted(stored.namelist()) == ["export/saved_model.pb", "export/variables/variables.index"]
    assert stored.read("export/variables/variables.index") == b"idx"


def test_directory_upload_refuses_paths_leaving_the_directory(owner_client, public_model):
    response = owner_client.post(URL, directory_upload({"../saved_model.pb": b"pb"}), format="multipart")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "The path '../saved_model.pb' is not a relative path inside the model directory."
    }
    assert not Version.objects.exists()


def test_directory_upload_needs_one_path_per_file(owner_client, public_model):
    payload = directory_upload({"saved_model.pb": b"pb"})
    payload["paths"] = []
    response = owner_client.post(URL, payload, format="multipart")
    assert response.status_code == 400
    assert response.json()["detail"] == "Send one `paths` entry (the relative path) for each of `files`."
    both = owner_client.post(URL, {"file": h5_like(), **directory_upload({"a": b"1"})}, format="multipart")
    assert both.json()["detail"].startswith("Send either one `file`, or a directory as `files` with `paths`")


def test_too_many_files_is_a_400_in_json(owner_client, public_model, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    response = owner_client.post(URL, directory_upload({f"m/f{i}": b"x" for i in range(3)}), format="multipart")
    assert response.status_code == 400
    assert response.json() == {"detail": "The request could not be read (too many files or fields?)."}


def tfjs_save_parts() -> dict:
    """The multipart body tf.io.http posts (tfjs-core io/http.ts)."""
    from django.core.files.uploadedfile import SimpleUploadedFile as Upload

    model_json = {"modelTopology": {}, "weightsManifest": [{"paths": ["./model.weights.bin"], "weights": []}]}
    return {
        "model.json": Upload("model.json", json.dumps(model_json).encode(), content_type="application/json"),
        "model.weights.bin": Upload("model.weights.bin", b"\0" * 16, content_type="application/octet-stream"),
    }


def test_a_model_saved_with_tf_io_http_is_an_upload_of_its_two_files(owner_client, public_model):
    import zipfile

    from registry import storage

    response = owner_client.post(URL, tfjs_save_parts(), format="multipart")
    assert response.status_code == 202, response.content
    version = public_model.versions.get(number=response.json()["number"])
    assert version.upload_name == "model.zip"
    with zipfile.ZipFile(io.BytesIO(storage.read_blob(version.upload_key))) as packed:
        assert sorted(packed.namelist()) == ["model.json", "model.weights.bin"]


def test_tf_io_http_parts_do_not_mix_with_other_uploads(owner_client, public_model):
    parts = tfjs_save_parts()
    weights_only = owner_client.post(URL, {"model.weights.bin": parts["model.weights.bin"]}, format="multipart")
    assert weights_only.status_code == 400
    assert weights_only.json()["detail"] == "`model.weights.bin` was sent without its `model.json`."
    both = owner_client.post(URL, {**tfjs_save_parts(), "file": h5_like()}, format="multipart")
    assert both.status_code == 400
    assert "one of them" in both.json()["detail"]


def test_companions_sent_with_an_upload_are_checked_by_name_count_and_size(owner_client, public_model, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile as Upload

    from converter import companions

    def post(*files):
        return owner_client.post(URL, {"file": h5_like(), "companions": list(files)}, format="multipart")

    assert post(Upload("labels.txt", b"cat\ndog\n")).status_code == 202
    for name in ("app.js", "page.html", "model.json", ".hidden.json", "weights.bin"):
        refused = post(Upload(name, b"{}"))
        assert refused.status_code == 400, name
        assert refused.json()["detail"].startswith("Companion files: "), name
    too_many = post(*(Upload(f"f{i}.txt", b"x") for i in range(companions.MAX_COUNT + 1)))
    assert too_many.json()["detail"] == f"Send at most {companions.MAX_COUNT} companion files."
    too_big = post(Upload("vocab.txt", b"x" * (companions.MAX_BYTES + 1)))
    assert too_big.status_code == 400
    assert "larger than 4 MiB" in too_big.json()["detail"]
    twice = post(Upload("a.txt", b"1"), Upload("a.txt", b"2"))
    assert twice.json()["detail"] == "Two companion files have the same name."

"""Upload → real Celery worker → storage (local disk and S3) → /m/ URL →
@tensorflow/tfjs in Node, compared with what TensorFlow computes."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests import zoo
from tests.e2e_fixtures import tfjs_predict
from tests.tokens import api_token

pytestmark = pytest.mark.e2e

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    directory = tmp_path_factory.mktemp("zoo")
    return {"cnn": zoo.keras2_cnn_h5(directory), "scorer": zoo.saved_model_zip(directory)}


@pytest.fixture
def token(owner) -> str:
    return api_token(owner)


def create_and_upload(
    registry, token: str, name: str, path, public: bool = True, variants=(), signature: str = ""
) -> dict:
    api = registry.api(token)
    created = api.post(f"{registry.url}/api/v1/models/", json={"name": name, "public": public})
    assert created.status_code == 201, created.text
    with open(path, "rb") as handle:
        response = api.post(
            f"{registry.url}/api/v1/models/alice/{name}/versions/",
            files={"file": (path.name, handle)},
            data={"variants": list(variants), **({"signature": signature} if signature else {})},
        )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    return registry.wait_final(api, "alice", name, response.json()["number"])


def assert_parity(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)


def test_keras_h5_is_converted_served_and_matches_keras_in_tfjs(registry, token, models, tmp_path):
    built = models["cnn"]
    version = create_and_upload(registry, token, "cnn", built.path)
    assert version["status"] == "ready", version["error"]
    assert (version["input_format"], version["format"]) == ("keras-h5", "layers-model")
    assert version["model_url"] == f"{registry.url}/m/alice/cnn/1/model.json"
    assert version["snippet"] == f"const model = await tf.loadLayersModel('{version['model_url']}');"
    assert version["converter_version"] == "tensorflowjs 4.22.0"
    assert version["parity"]["passed"] is True
    assert version["parity"]["max_abs_error"] <= TOLERANCE
    assert version["parity"]["inputs"] == [{"name": "image", "shape": [2, 12, 12, 3], "dtype": "float32"}]

    assert_parity(tfjs_predict(version["model_url"], "layers", built.inputs, tmp_path), built.expected)
    latest = f"{registry.url}/m/alice/cnn/latest/model.json"
    assert_parity(tfjs_predict(latest, "layers", built.inputs, tmp_path), built.expected)


def test_zipped_saved_model_becomes_graph_model_matching_tensorflow(registry, token, models, tmp_path):
    built = models["scorer"]
    version = create_and_upload(registry, token, "scorer", built.path)
    assert version["status"] == "ready", version["error"]
    assert (version["input_format"], version["format"]) == ("saved-model", "graph-model")
    assert version["snippet"].startswith("const model = await tf.loadGraphModel(")
    assert version["parity"]["passed"] is True
    assert version["parity"]["max_abs_error"] <= TOLERANCE
    assert version["parity"]["inputs"] == [{"name": "x", "shape": [2, 6], "dtype": "float32"}]
    assert_parity(tfjs_predict(version["model_url"], "graph", built.inputs, tmp_path), built.expected)


def test_private_model_loads_in_tfjs_only_with_the_token(registry, token, models, tmp_path):
    built = models["cnn"]
    version = create_and_upload(registry, token, "private-cnn", built.path, public=False)
    assert version["status"] == "ready", version["error"]
    url = version["model_url"]
    assert registry.api().get(url).status_code == 404
    headers = {"Authorization": f"Token {token}"}
    assert_parity(tfjs_predict(url, "layers", built.inputs, tmp_path, headers=headers), built.expected)


def test_failed_conversion_keeps_reason_and_next_upload_works(registry, token, models, tmp_path):
    marker = tmp_path / "lambda-ran"
    bad = zoo.keras2_lambda_h5(tmp_path, marker)
    version = create_and_upload(registry, token, "retry", bad, variants=["uint8"])
    assert version["status"] == "failed"
    assert [(v["quantization"], v["status"]) for v in version["variants"]] == [("uint8", "failed")]
    assert version["failure"] == "user"
    assert version["error"] == (
        "Layer 'sneaky' (Lambda) holds Python code; Modelport never runs code from an upload "
        "and TF.js cannot execute it."
    )
    assert not marker.exists()
    assert registry.api().get(f"{registry.url}/m/alice/retry/1/model.json").status_code == 404
    assert registry.api().get(f"{registry.url}/m/alice/retry/latest/model.json").status_code == 404

    api = registry.api(token)
    with open(models["cnn"].path, "rb") as handle:
        second = api.post(
            f"{registry.url}/api/v1/models/alice/retry/versions/", files={"file": ("cnn.h5", handle)}
        ).json()
    assert second["number"] == 2
    assert registry.wait_final(api, "alice", "retry", 2)["status"] == "ready"
    assert api.get(f"{registry.url}/m/alice/retry/latest/model.json").headers["X-Modelport-Version"] == "2"


def test_weights_only_h5_fails_with_a_reason(registry, token, tmp_path):
    version = create_and_upload(registry, token, "weights", zoo.keras2_weights_only_h5(tmp_path))
    assert version["status"] == "failed"
    assert version["error"] == (
        "The HDF5 file holds weights only, without the model's architecture. "
        "Save the whole model with model.save('model.h5')."
    )


def test_s3_objects_have_content_type_cache_control_and_bucket_cors(registry, token, models):
    if registry.backend.name != "s3":
        pytest.skip("S3 headers only exist on the S3 backend")
    import boto3

    version = create_and_upload(registry, token, "headers", models["cnn"].path)
    assert version["status"] == "ready", version["error"]
    endpoint = registry.backend.worker_env["S3_ENDPOINT_URL"]
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    keys = [item["Key"] for item in client.list_objects_v2(Bucket="modelport-test")["Contents"]]
    model_json = next(key for key in keys if key.endswith("/model.json"))
    head = client.head_object(Bucket="modelport-test", Key=model_json)
    assert head["ContentType"] == "application/json"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    shard = next(key for key in keys if key.startswith("blobs/sha256/"))
    assert client.head_object(Bucket="modelport-test", Key=shard)["ContentType"] == "application/octet-stream"
    rules = client.get_bucket_cors(Bucket="modelport-test")["CORSRules"]
    assert rules[0]["AllowedOrigins"] == ["*"]
    assert "GET" in rules[0]["AllowedMethods"]


def test_quantized_variants_have_their_own_urls_and_parity(registry, token, models, tmp_path):
    built = models["cnn"]
    api = registry.api(token)
    assert api.post(f"{registry.url}/api/v1/models/", json={"name": "small"}).status_code == 201
    with open(built.path, "rb") as handle:
        response = api.post(
            f"{registry.url}/api/v1/models/alice/small/versions/",
            files={"file": ("cnn.h5", handle)},
            data={"variants": ["float16", "uint8"]},
        )
    assert response.status_code == 202, response.text
    version = registry.wait_final(api, "alice", "small", 1)
    assert version["status"] == "ready", version["error"]
    full_size = version["size"]
    variants = {variant["quantization"]: variant for variant in version["variants"]}
    assert set(variants) == {"float16", "uint8"}
    for quantization, allowed in (("float16", 1e-2), ("uint8", 5e-2)):
        variant = variants[quantization]
        assert variant["status"] == "ready", variant["error"]
        assert variant["model_url"] == f"{registry.url}/m/alice/small/1/{quantization}/model.json"
        assert variant["parity"]["passed"] is True
        predicted = tfjs_predict(variant["model_url"], "layers", built.inputs, tmp_path)
        assert np.abs(predicted[0] - built.expected[0]).max() == pytest.approx(
            variant["parity"]["max_abs_error"], abs=0.02
        )
        np.testing.assert_allclose(predicted[0], built.expected[0], atol=allowed, rtol=0)
    assert variants["uint8"]["size"] < variants["float16"]["size"] < full_size

    later = api.post(f"{registry.url}/api/v1/models/alice/small/versions/1/variants/", json={"quantization": "uint16"})
    assert later.status_code == 202, later.text
    uint16 = wait_variant(api, f"{registry.url}/api/v1/models/alice/small/versions/1/", "uint16")
    assert uint16["status"] == "ready", uint16["error"]
    latest = f"{registry.url}/m/alice/small/latest/uint16/model.json"
    assert api.get(latest).json()["weightsManifest"][0]["paths"][0].startswith("../../blobs/")
    np.testing.assert_allclose(tfjs_predict(latest, "layers", built.inputs, tmp_path)[0], built.expected[0], atol=1e-2)


def wait_variant(api, version_url: str, quantization: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        variants = {v["quantization"]: v for v in api.get(version_url).json()["variants"]}
        if variants[quantization]["status"] != "pending" or time.monotonic() > deadline:
            return variants[quantization]
        time.sleep(0.5)


def test_saved_model_signature_is_chosen_by_name(registry, token, tmp_path):
    path, inputs, expected = zoo.two_signature_saved_model_zip(tmp_path)
    api = registry.api(token)
    assert api.post(f"{registry.url}/api/v1/models/", json={"name": "signatures"}).status_code == 201
    url = f"{registry.url}/api/v1/models/alice/signatures/versions/"
    for number, signature in enumerate(("", "logits", "nope"), start=1):
        with open(path, "rb") as handle:
            api.post(url, files={"file": (path.name, handle)}, data={"signature": signature})
        version = registry.wait_final(api, "alice", "signatures", number)
        if signature == "nope":
            assert version["status"] == "failed"
            assert version["error"].startswith(
                "The SavedModel has no signature named 'nope' (available: logits, serving_default)."
            )
            continue
        assert version["status"] == "ready", version["error"]
        predicted = tfjs_predict(version["model_url"], "graph", inputs, tmp_path)
        np.testing.assert_allclose(predicted[0], expected[signature or "serving_default"], atol=TOLERANCE, rtol=0)


def test_already_converted_tfjs_models_are_validated_relaid_and_hosted(registry, token, tmp_path):
    for name, built in zoo.tfjs_zips(tmp_path).items():
        version = create_and_upload(registry, token, f"tfjs-{name}", built.path)
        assert version["status"] == "ready", version["error"]
        assert version["input_format"] == "tfjs"
        assert version["format"] == f"{name}-model"
        if name == "layers":  # rebuilt in TensorFlow from the TF.js files and compared
            assert version["parity"]["passed"] is True and version["parity"]["max_abs_error"] <= TOLERANCE
        else:  # nothing to compare with: it ran in TF.js with finite outputs
            assert version["parity"]["reference"] == "none"
        predicted = tfjs_predict(version["model_url"], built.kind, built.inputs, tmp_path)
        np.testing.assert_allclose(predicted[0], built.expected[0], atol=TOLERANCE, rtol=0)


def test_saved_model_uploaded_as_its_directory_files(registry, token, models, tmp_path):
    built = models["scorer"]
    export_dir = built.path.parent / "scorer"  # the directory zoo.saved_model_zip zipped
    files = sorted(p for p in export_dir.rglob("*") if p.is_file())
    api = registry.api(token)
    assert api.post(f"{registry.url}/api/v1/models/", json={"name": "folder"}).status_code == 201
    handles = [open(p, "rb") for p in files]
    try:
        response = api.post(
            f"{registry.url}/api/v1/models/alice/folder/versions/",
            files=[("files", (p.name, h)) for p, h in zip(files, handles, strict=True)],
            data={"paths": [f"scorer/{p.relative_to(export_dir).as_posix()}" for p in files]},
        )
    finally:
        for handle in handles:
            handle.close()
    assert response.status_code == 202, response.text
    version = registry.wait_final(api, "alice", "folder", 1)
    assert version["status"] == "ready", version["error"]
    assert (version["input_format"], version["format"]) == ("saved-model", "graph-model")
    predicted = tfjs_predict(version["model_url"], "graph", built.inputs, tmp_path)
    np.testing.assert_allclose(predicted[0], built.expected[0], atol=TOLERANCE, rtol=0)

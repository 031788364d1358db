"""GET …/versions/N/summary/ on model.json files the summary cannot read:
publishing checks what TF.js needs to load a model.json, not every field the
summary reads, so an odd one is answered 409 in words, never a 500."""

from __future__ import annotations

import io
import json

import pytest

from registry import storage
from tests.test_web import add_ready_version

pytestmark = pytest.mark.django_db

DENSE = {"class_name": "Dense", "config": {"name": "dense", "batch_input_shape": [None, 4], "dtype": "float32"}}
WEIGHTS = [
    {"name": "dense/kernel", "shape": [4, 2], "dtype": "float32"},
    {"name": "dense/bias", "shape": [2], "dtype": "float32"},
]


def model_json(layers: list[dict], weights: list[dict] = WEIGHTS, **topology) -> dict:
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}
    return {
        "format": "layers-model",
        "modelTopology": {"model_config": config, **topology},
        "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": weights}],
    }


def ready_with(model, document: dict, key: str):
    """A ready layers-model version whose stored model.json is ``document``
    (``key`` unique per test: summaries are cached by key)."""
    storage.put_blob(key, io.BytesIO(json.dumps(document).encode()))
    return add_ready_version(model, 1, model_json_key=key, layers=[{"name": "dense", "output_shape": [None, 2]}])


def test_summary_of_a_well_formed_model_json_is_answered(owner_client, public_model):
    ready_with(public_model, model_json([DENSE]), "artifacts/summary-tests/well-formed/model.json")

    response = owner_client.get("/api/v1/models/alice/digits/versions/1/summary/")

    assert response.status_code == 200, response.content
    assert (response.json()["parameters"], response.json()["weight_bytes"]) == (10, 40)


ODD = {
    "a layer without its config": model_json([{"class_name": "Dense"}]),
    "a weight shape that is not a list": model_json([DENSE], [{"name": "dense/kernel", "shape": 8}]),
    "a model config that is not an object": {**model_json([DENSE]), "modelTopology": {"model_config": [DENSE]}},
}


@pytest.mark.parametrize("case", ODD)
def test_summary_of_a_model_json_it_cannot_read_is_409_in_words(owner_client, public_model, case):
    ready_with(public_model, ODD[case], f"artifacts/summary-tests/{case.replace(' ', '-')}/model.json")

    response = owner_client.get("/api/v1/models/alice/digits/versions/1/summary/")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "Version 1 cannot be summarised: its model.json does not describe its layers, signature or "
        "weights in a form Modelport can read. The model itself is served as it is."
    }


def test_the_model_page_leaves_out_a_summary_it_cannot_make(client, public_model):
    ready_with(public_model, ODD["a layer without its config"], "artifacts/summary-tests/page/model.json")

    response = client.get("/alice/digits/")

    assert response.status_code == 200
    assert "A cut here downloads" not in response.content.decode()


def test_summary_of_a_private_model_is_404_for_an_outsider(outsider_client, private_model):
    ready_with(private_model, model_json([DENSE]), "artifacts/summary-tests/private/model.json")

    response = outsider_client.get("/api/v1/models/alice/secret/versions/1/summary/")

    assert response.status_code == 404

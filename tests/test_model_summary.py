"""The model page explains the model: its signature, a layer summary that
agrees with Keras' own model.summary() (parameters, output shapes), the
weight bytes of the model, its variants and of a cut at each layer (equal
to what the served cut downloads), and snippets for ES modules, a plain
script tag and a verified load."""

from __future__ import annotations

import html

import pytest

from tests import zoo
from tests.test_end_to_end import create_and_upload
from tests.tokens import api_token

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["disk"], indirect=True)]


def test_the_summary_agrees_with_keras_and_with_the_served_cuts(registry, owner, tmp_path, client):
    import tf_keras as keras
    from django.template.defaultfilters import filesizeformat

    built = zoo.keras2_cnn_h5(tmp_path)
    token = api_token(owner)
    version = create_and_upload(registry, token, "cnn", built.path, variants=["uint8"])
    assert version["status"] == "ready", version["error"]
    api = registry.api(token)
    summary = api.get(f"{registry.url}/api/v1/models/alice/cnn/versions/1/summary/").json()

    model = keras.models.load_model(built.path)
    assert summary["inputs"] == [{"name": "image", "shape": [None, 12, 12, 3], "dtype": "float32"}]
    assert summary["outputs"] == [{"name": "head", "shape": [None, 5], "dtype": "float32"}]
    assert summary["parameters"] == model.count_params()
    by_name = {row["name"]: row for row in summary["layers"]}
    for layer in model.layers:
        assert by_name[layer.name]["class_name"] == type(layer).__name__
        assert by_name[layer.name]["parameters"] == layer.count_params(), layer.name
        if layer.name != "image":
            assert tuple(by_name[layer.name]["output_shape"]) == layer.output_shape, layer.name
    assert summary["weight_bytes"] == version["size"]
    for layer in ("conv", "gap", "head"):
        cut = api.get(f"{registry.url}/m/alice/cnn/1/cut/{layer}/model.json").json()
        blobs = {path.rsplit("/", 1)[-1] for group in cut["weightsManifest"] for path in group["paths"]}
        served = sum(len(api.get(f"{registry.url}/m/alice/cnn/blobs/{sha}").content) for sha in blobs)
        assert by_name[layer]["cut_bytes"] == served, layer

    client.force_login(owner)
    page = client.get("/alice/cnn/").content.decode()
    assert "The model" in page and "A cut here downloads" in page
    assert f"{model.count_params():,} parameters." in page
    uint8 = next(variant for variant in version["variants"] if variant["variant"] == "uint8")
    assert f'<td>uint8</td><td class="num">{filesizeformat(uint8["size"])}</td>' in page
    assert f'<td>full model</td><td class="num">{filesizeformat(version["size"])}</td>' in page
    text = html.unescape(page)  # the snippets as a user copies them
    assert "import * as tf from 'https://cdn.jsdelivr.net/npm/@tensorflow/tfjs@4.22.0/+esm';" in text
    assert '<script src="https://cdn.jsdelivr.net/npm/@tensorflow/tfjs@4.22.0/dist/tf.min.js"></script>' in text
    assert f"verifiedFetch({{integrity: '{version['model_json_integrity']}'}})" in text


def test_a_graph_model_summary_gives_its_signature(registry, owner, tmp_path):
    built = zoo.saved_model_zip(tmp_path)
    token = api_token(owner)
    version = create_and_upload(registry, token, "scorer", built.path)
    assert version["status"] == "ready", version["error"]
    summary = registry.api(token).get(f"{registry.url}/api/v1/models/alice/scorer/versions/1/summary/").json()
    assert summary["inputs"] == [{"name": "x", "shape": [None, 6], "dtype": "float32"}]
    assert summary["outputs"] == [{"name": "scores", "shape": [None, 4], "dtype": "float32"}]
    assert summary["parameters"] == 6 * 4 + 4
    assert summary["layers"] == []

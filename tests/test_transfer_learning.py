"""MobileNet-style transfer-learning bases: a .h5 MobileNet is served whole
and cut at conv_pw_13_relu; TF.js matches TensorFlow for both, and the cut
reuses the full model's weight blobs."""

from __future__ import annotations

import numpy as np
import pytest

from tests import zoo
from tests.e2e_fixtures import tfjs_predict
from tests.test_end_to_end import create_and_upload
from tests.tokens import api_token

pytestmark = pytest.mark.e2e

CUT = "conv_pw_13_relu"


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    return zoo.mobilenet_h5(tmp_path_factory.mktemp("mobilenet"), CUT)


def test_mobilenet_cut_at_conv_pw_13_relu_matches_keras_and_reuses_blobs(registry, owner, mobilenet, tmp_path):
    built, cut_expected = mobilenet
    token = api_token(owner)
    version = create_and_upload(registry, token, "mobilenet", built.path)
    assert version["status"] == "ready", version["error"]
    assert version["parity"]["max_abs_error"] <= 1e-4
    full = tfjs_predict(version["model_url"], "layers", built.inputs, tmp_path)
    np.testing.assert_allclose(full[0], built.expected[0], atol=1e-4, rtol=0)

    api = registry.api(token)
    layers = api.get(f"{registry.url}/api/v1/models/alice/mobilenet/versions/1/layers/").json()
    by_name = {layer["name"]: layer for layer in layers}
    assert by_name[CUT]["class_name"] == "ReLU"
    assert by_name[CUT]["output_shape"] == [None, 4, 4, 256]
    cut_url = by_name[CUT]["cut_url"]
    assert cut_url == f"{registry.url}/m/alice/mobilenet/1/cut/{CUT}/model.json"

    cut = tfjs_predict(cut_url, "layers", built.inputs, tmp_path)
    assert cut[0].shape == (2, 4, 4, 256)
    np.testing.assert_allclose(cut[0], cut_expected[0], atol=1e-4, rtol=1e-4)

    full_paths = {p for g in api.get(version["model_url"]).json()["weightsManifest"] for p in g["paths"]}
    cut_json = api.get(cut_url).json()
    cut_paths = {p.replace("../../../blobs/", "../blobs/") for g in cut_json["weightsManifest"] for p in g["paths"]}
    assert len(cut_paths - full_paths) <= 1, "a cut may add at most the one group it splits"
    assert len(cut_paths & full_paths) >= len(cut_paths) - 1
    assert cut_json["modelTopology"]["model_config"]["config"]["output_layers"] == [[CUT, 0, 0]]


def test_cut_of_unknown_layer_or_graph_model_is_refused_in_words(registry, owner, tmp_path):
    token = api_token(owner)
    scorer = zoo.saved_model_zip(tmp_path)
    assert create_and_upload(registry, token, "scorer", scorer.path)["status"] == "ready"
    graph = registry.api().get(f"{registry.url}/m/alice/scorer/1/cut/dense/model.json")
    assert graph.status_code == 400
    assert graph.json() == {"detail": "Only layers models can be cut; this version is a graph model."}


def test_legacy_keras_saved_model_zip_becomes_a_layers_model(registry, owner, tmp_path):
    token = api_token(owner)
    built = zoo.keras2_saved_model_zip(tmp_path)
    version = create_and_upload(registry, token, "legacy", built.path)
    assert version["status"] == "ready", version["error"]
    assert (version["input_format"], version["format"]) == ("keras-saved-model", "layers-model")
    predicted = tfjs_predict(version["model_url"], "layers", built.inputs, tmp_path)
    np.testing.assert_allclose(predicted[0], built.expected[0], atol=1e-4, rtol=0)
    unknown = registry.api().get(f"{registry.url}/m/alice/legacy/1/cut/nope/model.json")
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "The model has no top-level layer named 'nope'."}


def test_lambda_hidden_in_a_wrapper_never_runs(registry, owner, tmp_path):
    token = api_token(owner)
    marker = tmp_path / "lambda-ran"
    version = create_and_upload(registry, token, "wrapped", zoo.keras2_wrapped_lambda_h5(tmp_path, marker))
    assert version["status"] == "failed"
    assert "hidden_code" in version["error"] and "Lambda" in version["error"]
    assert not marker.exists()

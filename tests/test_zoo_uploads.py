"""The layer zoo through the whole service: tf-keras (.h5) and Keras 3
(.keras) models covering the layer types TF.js supports are uploaded,
converted, proven and served, and TF.js predictions from the served URL
equal Keras'."""

from __future__ import annotations

import numpy as np
import pytest

from tests import keras3_zoo, zoo
from tests.e2e_fixtures import tfjs_predict
from tests.test_end_to_end import create_and_upload
from tests.tokens import api_token

pytestmark = pytest.mark.e2e

KERAS3_MODELS = [
    keras3_zoo.dense_sequential,
    keras3_zoo.text_sequential,
    keras3_zoo.conv2d_functional,
    keras3_zoo.conv1d_functional,
    keras3_zoo.recurrent_functional,
    keras3_zoo.two_inputs_two_outputs,
    keras3_zoo.masks_noise_and_3d,
    keras3_zoo.mobilenet,
    keras3_zoo.mobilenet_v2,
]


def expected_outputs(model, inputs) -> list[np.ndarray]:
    outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    return outputs if isinstance(outputs, list) else [outputs]


@pytest.fixture(scope="module")
def uploads(tmp_path_factory) -> dict:
    directory = tmp_path_factory.mktemp("zoo-uploads")
    files = {}
    for name, (model, inputs) in zoo.keras2_layer_zoo().items():
        path = directory / f"keras2-{name}.h5"
        model.save(path)
        files[f"keras2-{name}"] = (path, inputs, expected_outputs(model, inputs))
    for build in KERAS3_MODELS:
        case = build()
        path = keras3_zoo.save_forms(case.model, directory, build.__name__, ("keras",))["keras"]
        files[f"keras3-{build.__name__}".replace("_", "-")] = (
            path,
            case.inputs,
            expected_outputs(case.model, case.inputs),
        )
    return files


def test_layer_zoo_uploads_match_keras_from_the_served_url(registry, owner, uploads, tmp_path):
    token = api_token(owner)
    for name, (path, inputs, expected) in uploads.items():
        version = create_and_upload(registry, token, name, path)
        assert version["status"] == "ready", f"{name}: {version['error']}"
        assert version["parity"]["passed"] is True, name
        predicted = tfjs_predict(version["model_url"], "layers", inputs, tmp_path)
        assert len(predicted) == len(expected), name
        for got, want in zip(predicted, expected, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4, err_msg=name)

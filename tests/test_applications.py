"""A keras.applications sweep: every architecture (weights=None, small
inputs) goes through the service to a URL, as a layers model when TF.js
layers can express it and a graph model otherwise, and TF.js predictions
from the served URL equal Keras'."""

from __future__ import annotations

import numpy as np
import pytest

from tests import keras3_zoo
from tests.e2e_fixtures import tfjs_predict
from tests.test_end_to_end import create_and_upload
from tests.tokens import api_token

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["disk"], indirect=True)]

# name: (application, input side, the output format Modelport must choose)
APPLICATIONS = {
    "MobileNet": (32, "layers-model"),
    "MobileNetV2": (32, "layers-model"),
    "MobileNetV3Small": (32, "layers-model"),  # hard_silu and keras.ops arithmetic, rewritten
    "MobileNetV3Large": (32, "layers-model"),
    "EfficientNetB0": (32, "layers-model"),  # its Normalization becomes a BatchNormalization
    "EfficientNetV2B0": (32, "layers-model"),  # Normalization with fixed statistics
    "ResNet50": (32, "layers-model"),
    "ResNet50V2": (32, "layers-model"),
    "DenseNet121": (32, "layers-model"),
    "Xception": (71, "layers-model"),
    "InceptionV3": (75, "layers-model"),
    "NASNetMobile": (32, "layers-model"),
    "ConvNeXtTiny": (32, "layers-model"),  # LayerScale (Keras' own class), grouped convs, keras.ops adds
    "VGG16": (32, "layers-model"),
}


@pytest.fixture(scope="module")
def applications(tmp_path_factory) -> dict:
    import keras

    directory = tmp_path_factory.mktemp("applications")
    rng = np.random.default_rng(12)
    built = {}
    for index, (name, (side, output_format)) in enumerate(APPLICATIONS.items()):
        model = getattr(keras.applications, name)(
            weights=None, input_shape=(side, side, 3), classes=10, classifier_activation=None
        )
        keras3_zoo.perturb(model, index)
        path = directory / f"{name}.keras"
        model.save(path)
        inputs = [rng.uniform(-1, 1, (2, side, side, 3)).astype(np.float32)]
        built[name] = (path, inputs, model.predict(inputs[0], verbose=0), output_format)
        keras.backend.clear_session()
    return built


def test_every_keras_application_gets_a_url_that_matches_keras_in_tfjs(registry, owner, applications, tmp_path):
    token = api_token(owner)
    for name, (path, inputs, expected, output_format) in applications.items():
        version = create_and_upload(registry, token, name.lower(), path)
        assert version["status"] == "ready", f"{name}: {version['error']}"
        assert version["format"] == output_format, f"{name}: {version['graph_reason']}"
        assert version["parity"]["passed"] is True, name
        (predicted,) = tfjs_predict(version["model_url"], output_format.split("-")[0], inputs, tmp_path)
        assert np.abs(expected).max() > 1e-3, f"{name}: degenerate outputs prove nothing"
        np.testing.assert_allclose(predicted, expected, atol=1e-4, rtol=1e-3, err_msg=name)

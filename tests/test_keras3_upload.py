"""Keras 3 uploads (.keras and Keras-3 .h5) go through the service to TF.js
layers models whose predictions, from the served URL, equal Keras'."""

from __future__ import annotations

import numpy as np
import pytest

from tests import keras3_zoo
from tests.e2e_fixtures import tfjs_predict
from tests.test_end_to_end import create_and_upload
from tests.tokens import api_token

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def keras3_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keras3-uploads")
    files = {}
    for build, form in ((keras3_zoo.two_inputs_two_outputs, "keras"), (keras3_zoo.recurrent_functional, "h5")):
        case = build()
        path = keras3_zoo.save_forms(case.model, directory, build.__name__, (form,))[form]
        expected = case.model.predict(case.inputs if len(case.inputs) > 1 else case.inputs[0], verbose=0)
        files[build.__name__] = (path, case.inputs, expected if isinstance(expected, list) else [expected])
    return files


def test_keras3_files_are_converted_proven_and_served(registry, owner, keras3_files, tmp_path):
    token = api_token(owner)
    for name, (path, inputs, expected) in keras3_files.items():
        version = create_and_upload(registry, token, name.replace("_", "-"), path)
        assert version["status"] == "ready", version["error"]
        assert version["format"] == "layers-model"
        assert version["input_format"] == ("keras-v3" if path.suffix == ".keras" else "keras-h5")
        assert version["parity"]["passed"] is True and version["parity"]["max_abs_error"] <= 1e-4
        predicted = tfjs_predict(version["model_url"], "layers", inputs, tmp_path)
        for got, want in zip(predicted, expected, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_keras3_lambda_upload_fails_without_running_it(registry, owner, tmp_path):
    token = api_token(owner)
    marker = tmp_path / "keras3-lambda-ran"
    model = keras3_zoo.lambda_model(marker)
    path = keras3_zoo.save_forms(model, tmp_path, "sneaky", ("keras",))["keras"]
    marker.unlink(missing_ok=True)
    version = create_and_upload(registry, token, "sneaky", path)
    assert version["status"] == "failed"
    assert "Lambda" in version["error"] and "'sneaky'" in version["error"]
    assert not marker.exists()

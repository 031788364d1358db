"""Keras 3 models (.keras and Keras-3 .h5) become TF.js layers models that
tf.loadLayersModel loads in Node and that predict what Keras predicts."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from converter.errors import ConversionError
from converter.keras3 import convert_keras3
from tests import keras3_zoo as zoo

pytestmark = pytest.mark.e2e

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# tensorflow_decision_forests (imported by tensorflowjs) imports IPython when
# stdout is not a terminal, as under pytest's capture.
os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
SHARD_BYTES = 1024 * 1024


def convert_and_predict(case: zoo.Case, tmp_path, stem: str, forms=("keras", "h5")) -> dict[str, float]:
    """Convert the saved forms, run each in TF.js, and return the max abs error per form."""
    expected = case.model.predict(case.inputs if len(case.inputs) > 1 else case.inputs[0], verbose=0)
    expected = expected if isinstance(expected, list) else [expected]
    errors = {}
    for form, path in zoo.save_forms(case.model, tmp_path, stem, forms).items():
        out = tmp_path / f"{stem}-{form}"
        convert_keras3(path, out, SHARD_BYTES)
        manifest = json.loads((out / "model.json").read_text())["weightsManifest"]
        names = [w["name"] for group in manifest for w in group["weights"]]
        # No optimizer state, nothing missing (a Normalization's sample count is not a weight TF.js takes).
        served = [w for w in case.model.weights if not w.path.endswith("_norm/count")]
        # Rewrites into a BatchNormalization add statistics Keras keeps in the config.
        from_config = {
            layer.name
            for layer in case.model.layers
            if type(layer).__name__ == "LayerScale" or getattr(layer, "input_mean", None) is not None
        }
        statistics = ("/moving_mean", "/moving_variance")
        added = [n for n in names if n.split("/")[0] in from_config and n.endswith(statistics)]
        assert len(added) == 2 * len(from_config)
        assert len(names) - len(added) == len(served), names
        got = zoo.tfjs_predict_dir(out, case.inputs, tmp_path)
        assert len(got) == len(expected)
        for tfjs_out, keras_out in zip(got, expected, strict=True):
            np.testing.assert_allclose(tfjs_out, keras_out, atol=1e-4, rtol=0, err_msg=f"{stem} ({form})")
        errors[form] = max(float(np.max(np.abs(g - e))) for g, e in zip(got, expected, strict=True))
    scale = max(float(np.max(np.abs(e))) for e in expected)
    print(f"{stem}: max abs error {errors}, largest output {scale:.3g}")
    return errors


@pytest.mark.parametrize(
    "build",
    [
        zoo.dense_sequential,
        zoo.unbuilt_sequential,
        zoo.text_sequential,
        zoo.conv2d_functional,
        zoo.conv1d_functional,
        zoo.recurrent_functional,
        zoo.two_inputs_two_outputs,
        zoo.masks_noise_and_3d,
        zoo.adapted_normalization,
        zoo.hard_activations,
        zoo.hard_activations_sequential,
        zoo.convnext_parts,
    ],
    ids=lambda build: build.__name__,
)
def test_keras3_model_predicts_the_same_in_tfjs(build, tmp_path):
    convert_and_predict(build(), tmp_path, build.__name__)


def test_sequential_shape_rewrites_use_the_shapes_a_keras_file_records(tmp_path):
    case = zoo.shape_rewrites_sequential()
    convert_and_predict(case, tmp_path, "shapes", forms=("keras",))

    # A Sequential saved as .h5 records no shapes for weightless layers.
    h5 = zoo.save_forms(case.model, tmp_path, "shapes", forms=("h5",))["h5"]
    with pytest.raises(ConversionError) as error:
        convert_keras3(h5, tmp_path / "out-h5", SHARD_BYTES)
    assert str(error.value) == (
        "Layer 'over_time' (Softmax) normalises over axis 1, which needs its input shape; the file does not "
        "record it (Sequential models saved as .h5 keep almost no shapes; save as .keras)."
    )


@pytest.mark.parametrize(
    "build",
    [zoo.mobilenet, zoo.mobilenet_v2, zoo.frozen_base_in_sequential, zoo.resnet50],
    ids=lambda build: build.__name__,
)
def test_keras3_application_predicts_the_same_in_tfjs(build, tmp_path):
    convert_and_predict(build(), tmp_path, build.__name__)


@pytest.mark.parametrize("form", ["keras", "h5"])
def test_lambda_layer_is_refused_without_running_its_code(form, tmp_path):
    marker = tmp_path / "lambda-ran"
    model = zoo.lambda_model(marker)
    paths = zoo.save_forms(model, tmp_path, "lambda")
    marker.unlink(missing_ok=True)  # building the model traced the function once

    with pytest.raises(ConversionError) as error:
        convert_keras3(paths[form], tmp_path / "out", SHARD_BYTES)

    assert str(error.value) == (
        "Layer 'sneaky' (Lambda) holds Python code; Modelport never runs code from an upload "
        "and TF.js cannot execute it."
    )
    assert not marker.exists()
    assert not (tmp_path / "out" / "model.json").exists()


def test_gru_with_keras3_default_reset_after_is_refused(tmp_path):
    import keras

    inputs = keras.Input((5, 3))
    model = keras.Model(inputs, keras.layers.GRU(4, name="gru")(inputs))
    path = zoo.save_forms(model, tmp_path, "gru")["keras"]

    with pytest.raises(ConversionError) as error:
        convert_keras3(path, tmp_path / "out", SHARD_BYTES)

    assert str(error.value) == (
        "Layer 'gru' (GRU) uses reset_after=True (the Keras 3 default), which TF.js' GRU layer does not implement."
    )


def test_custom_layer_class_is_refused(tmp_path):
    import keras

    @keras.saving.register_keras_serializable(package="Sly")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    inputs = keras.Input((3,))
    model = keras.Model(inputs, Doubler(name="doubler")(inputs))
    paths = zoo.save_forms(model, tmp_path, "custom")

    for path in paths.values():
        with pytest.raises(ConversionError) as error:
            convert_keras3(path, tmp_path / "out", SHARD_BYTES)
        assert str(error.value).startswith("Layer 'doubler' (Doubler) is a custom class (Sly>Doubler);")


def test_layer_missing_from_tfjs_is_refused(tmp_path):
    import keras

    a, b = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([a, b], keras.layers.Subtract(name="minus")([a, b]))
    path = zoo.save_forms(model, tmp_path, "subtract")["h5"]

    with pytest.raises(ConversionError) as error:
        convert_keras3(path, tmp_path / "out", SHARD_BYTES)

    assert str(error.value) == "Layer 'minus' (Subtract) has no TF.js equivalent: TF.js 4.22 does not implement it."


@pytest.mark.parametrize(
    "name, message",
    [
        ("masked_mean", "Layer 'masked_mean' (GlobalAveragePooling1D) receives a mask, which TF.js would apply "
         "differently from Keras."),
        ("rnn_after_conv", "Layer 'rnn_after_conv' (SimpleRNN) runs without a mask while another layer of the model "
         "masks; TF.js 4.22 would hand it that stale mask (a TF.js bug), so its results would differ."),
    ],
)  # fmt: skip
def test_mask_that_tfjs_would_apply_differently_is_refused(name, message, tmp_path):
    paths = zoo.save_forms(zoo.masked_layer_models()[name], tmp_path, name)

    for path in paths.values():
        with pytest.raises(ConversionError) as error:
            convert_keras3(path, tmp_path / "out", SHARD_BYTES)
        assert str(error.value) == message


def test_code_behind_a_layer_tfjs_lacks_is_refused_before_keras_builds_the_graph_model(tmp_path):
    """The layers route stops at the first layer TF.js lacks; the graph route
    would have Keras build the model, so the whole config is checked first."""
    import json

    import keras

    from converter import run

    marker = tmp_path / "lambda-ran"

    def side_effect(x, marker=str(marker)):
        open(marker, "w").close()
        return x

    tokens = keras.Input((4, 8))
    attended = keras.layers.MultiHeadAttention(2, 4, name="attention")(tokens, tokens)  # not in TF.js: graph route
    model = keras.Model(tokens, keras.layers.Lambda(side_effect, name="sneaky")(attended))
    model.save(tmp_path / "upload.keras")
    marker.unlink(missing_ok=True)
    job = tmp_path / "job"
    job.mkdir()
    (tmp_path / "upload.keras").rename(job / "upload")
    (job / "request.json").write_text(json.dumps({"format": "", "shard_bytes": 4 * 1024**2, "variants": []}))

    run.handle(job)

    result = json.loads((job / "result.json").read_text())
    assert result["ok"] is False
    assert result["error"] == (
        "Layer 'sneaky' (Lambda) holds Python code; Modelport never runs code from an upload and TF.js cannot "
        "execute it."
    )
    assert not marker.exists()
    assert not (job / "graph-savedmodel").exists()


def test_a_recurrent_layer_with_an_activation_tfjs_lacks_is_left_to_the_graph_route(tmp_path):
    """A recurrent layer applies its activation inside its loop: it cannot be
    split off after the layer as the hard_* rewrites do for Dense or Conv."""
    import keras

    from converter.errors import NotExpressible
    from converter.keras3 import normalise

    inputs = keras.Input((5, 3))
    model = keras.Model(inputs, keras.layers.SimpleRNN(4, activation="hard_sigmoid", name="rnn")(inputs))
    model.save(tmp_path / "rnn.keras")

    with pytest.raises(NotExpressible, match="Layer 'rnn' \\(SimpleRNN\\) uses the activation 'hard_sigmoid'"):
        normalise(tmp_path / "rnn.keras")

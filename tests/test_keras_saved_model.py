"""Legacy tf-keras SavedModels (``model.save("dir")``) become TF.js layers
models without anything from the upload being executed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from converter import parity
from converter.errors import ConversionError
from converter.keras_saved_model import (
    NoLayersTopology,
    convert_legacy_keras_saved_model,
    is_legacy_keras_saved_model,
)

pytestmark = pytest.mark.e2e

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# tensorflow_decision_forests (imported by tensorflowjs) imports IPython when
# stdout is not a terminal, as under pytest's capture.
os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")

SHARD_BYTES = 64 * 1024  # small, so weights span several shards


def _randomize(model, seed: int) -> None:
    """Give every weight a distinctive value, so a weight landing in the
    wrong place cannot go unnoticed (fresh BatchNorm statistics are 0 and 1)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if "moving_variance" in weight.name:
            weight.assign(rng.uniform(0.5, 1.5, size=shape).astype(np.float32))
        else:
            weight.assign(rng.uniform(-0.5, 0.5, size=shape).astype(np.float32))


def _train_once(model, inputs: list[np.ndarray]) -> None:
    """One optimizer step, so the checkpoint also holds optimizer slots."""
    model.compile(optimizer="adam", loss="mse")
    targets = np.zeros(model.output_shape[1:], np.float32)[None].repeat(len(inputs[0]), axis=0)
    model.train_on_batch(inputs if len(inputs) > 1 else inputs[0], targets)


def _save(model, directory: Path) -> Path:
    saved = directory / "saved"
    model.save(saved, save_format="tf")
    assert is_legacy_keras_saved_model(saved)
    return saved


def _convert_and_compare(model, inputs: list[np.ndarray], directory: Path) -> float:
    """Convert ``model``'s SavedModel, run it in TF.js and return the largest
    absolute difference from tf-keras' own predictions."""
    saved = _save(model, directory)
    expected = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    expected = expected if isinstance(expected, list) else [expected]
    output = directory / "tfjs"

    h5_path = convert_legacy_keras_saved_model(saved, output, SHARD_BYTES)

    actual = parity.run_tfjs(output, "layers", inputs, directory)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    manifest = json.loads((output / "model.json").read_text())["weightsManifest"]
    assert len([w for group in manifest for w in group["weights"]]) == len(model.weights)  # no optimizer slots
    assert _layer_names(output) == [layer.name for layer in model.layers if type(layer).__name__ != "InputLayer"]
    # The .h5 written on the way is what the converter's TensorFlow parity
    # check loads: it must rebuild the very same model.
    _, predict, _ = parity.keras2_reference(h5_path)
    for got, want in zip(predict(inputs), expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    return max(float(np.abs(got - want).max()) for got, want in zip(actual, expected, strict=True))


def _layer_names(output: Path) -> list[str]:
    """The converted model's layer names, without its InputLayers and the
    pooling layers added to stand for keepdims=True."""
    topology = json.loads((output / "model.json").read_text())["modelTopology"]["model_config"]
    return [
        layer["config"]["name"]
        for layer in topology["config"]["layers"]
        if layer["class_name"] != "InputLayer" and not layer["config"]["name"].endswith("__pool")
    ]


def _floats(*shape: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(np.float32)


def test_sequential_dense_model_matches_tf_keras(tmp_path):
    import tf_keras as keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dropout(0.3, name="drop"),
            keras.layers.Dense(3, activation="softmax", name="probs"),
        ]
    )
    inputs = [_floats(5, 6)]
    _train_once(model, inputs)
    _randomize(model, seed=2)

    _convert_and_compare(model, inputs, tmp_path)


def test_functional_cnn_with_batch_norm_and_depthwise_matches_tf_keras(tmp_path):
    import tf_keras as keras

    keras.utils.set_random_seed(1)
    image = keras.Input((12, 12, 3), name="image")
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(image)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, name="dw")(x)
    x = keras.layers.BatchNormalization(name="dw_bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(image, keras.layers.Dense(4, name="logits")(x))
    inputs = [_floats(3, 12, 12, 3)]
    _train_once(model, inputs)
    _randomize(model, seed=3)

    _convert_and_compare(model, inputs, tmp_path)


def test_embedding_and_recurrent_model_matches_tf_keras(tmp_path):
    import tf_keras as keras

    keras.utils.set_random_seed(1)
    tokens = keras.Input((7,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 8, name="embed")(tokens)
    x = keras.layers.LSTM(6, return_sequences=True, name="lstm")(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(4), name="bilstm")(x)
    model = keras.Model(tokens, keras.layers.Dense(2, name="out")(x))
    inputs = [np.random.default_rng(4).integers(0, 20, size=(3, 7)).astype(np.int32)]
    _randomize(model, seed=4)

    _convert_and_compare(model, inputs, tmp_path)


def _nested_model(encoder_layer_name: str):
    import tf_keras as keras

    keras.utils.set_random_seed(1)
    # The inner model's BatchNormalization comes first, so its weights in
    # tf-keras' order (trainable, then non-trainable) differ from creation order.
    block = keras.Sequential(
        [keras.Input((5,)), keras.layers.BatchNormalization(name="norm"), keras.layers.Dense(4, name="dense")],
        name="block",
    )
    encoder_in = keras.Input((4,))
    encoded = keras.layers.Dense(3, activation="tanh", name=encoder_layer_name)(encoder_in)
    encoder = keras.Model(encoder_in, encoded, name="encoder")
    features = keras.Input((5,), name="features")
    return keras.Model(features, keras.layers.Dense(2, name="head")(encoder(block(features))))


def test_nested_models_match_tf_keras(tmp_path):
    model = _nested_model("encoder_dense")
    inputs = [_floats(4, 5)]
    _train_once(model, inputs)
    _randomize(model, seed=6)

    _convert_and_compare(model, inputs, tmp_path)


def test_nested_models_with_clashing_layer_names_are_rejected(tmp_path):
    saved = _save(_nested_model("dense"), tmp_path)

    with pytest.raises(ConversionError) as caught:
        convert_legacy_keras_saved_model(saved, tmp_path / "tfjs", SHARD_BYTES)

    assert str(caught.value) == (
        "Layers 'block' and 'encoder' both hold a weight named 'dense/kernel'; TF.js matches weights by name. "
        "Give the layers inside nested models unique names."
    )


def test_mobilenet_matches_tf_keras_and_keeps_layer_names(tmp_path):
    import tf_keras as keras

    keras.utils.set_random_seed(1)
    model = keras.applications.MobileNet(
        weights=None, alpha=0.25, input_shape=(128, 128, 3), classifier_activation=None
    )
    _randomize(model, seed=7)
    inputs = [_floats(2, 128, 128, 3)]

    _convert_and_compare(model, inputs, tmp_path)

    names = _layer_names(tmp_path / "tfjs")
    assert names == [layer.name for layer in model.layers][1:]
    assert "conv_pw_13_relu" in names


def _lambda_model(marker: Path, hidden_in_wrapper: bool):
    import tf_keras as keras

    def side_effect(x, marker=str(marker)):
        open(marker, "w").close()
        return x

    inputs = keras.Input((3, 4))
    x = keras.layers.Dense(2, name="dense")(inputs)
    sneaky = keras.layers.Lambda(side_effect, name="sneaky")
    x = keras.layers.TimeDistributed(sneaky, name="wrapper")(x) if hidden_in_wrapper else sneaky(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize("hidden_in_wrapper", [False, True], ids=["top-level", "inside-TimeDistributed"])
def test_lambda_layer_is_rejected_without_running_its_code(tmp_path, hidden_in_wrapper):
    marker = tmp_path / "lambda-ran"
    saved = _save(_lambda_model(marker, hidden_in_wrapper), tmp_path)
    assert marker.exists()  # saving traced the function: it does what it says
    marker.unlink()

    with pytest.raises(ConversionError) as caught:
        convert_legacy_keras_saved_model(saved, tmp_path / "tfjs", SHARD_BYTES)

    assert str(caught.value).startswith("Layer 'sneaky' (Lambda) holds Python code")
    assert not marker.exists()
    assert not (tmp_path / "tfjs" / "model.json").exists()


def test_custom_layer_class_is_rejected(tmp_path):
    import tf_keras as keras

    class Scaler(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((4,))
    saved = _save(keras.Model(inputs, Scaler(name="scaler")(keras.layers.Dense(2)(inputs))), tmp_path)

    with pytest.raises(ConversionError) as caught:
        convert_legacy_keras_saved_model(saved, tmp_path / "tfjs", SHARD_BYTES)

    assert str(caught.value) == (
        "Layer 'scaler' is a custom class 'Scaler'; custom code is never run and TF.js cannot load it."
    )


def test_subclassed_model_has_no_layers_topology(tmp_path):
    import tf_keras as keras

    class Doubler(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x) * 2.0

    model = Doubler()
    model(np.zeros((1, 4), np.float32))
    saved = _save(model, tmp_path)

    with pytest.raises(NoLayersTopology) as caught:
        convert_legacy_keras_saved_model(saved, tmp_path / "tfjs", SHARD_BYTES)

    assert str(caught.value).startswith("The model is a subclassed Keras model ('Doubler')")


def test_only_keras_saved_models_are_recognised(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "saved_model.pb").write_bytes(b"")
    keras_dir = tmp_path / "keras"
    keras_dir.mkdir()
    (keras_dir / "saved_model.pb").write_bytes(b"")
    (keras_dir / "keras_metadata.pb").write_bytes(b"")

    assert not is_legacy_keras_saved_model(plain)
    assert is_legacy_keras_saved_model(keras_dir)

"""Keras models that TF.js layers cannot express become TF.js graph models,
automatically: the version says why, its snippet uses loadGraphModel, and
TF.js predictions from the served URL equal Keras'."""

from __future__ import annotations

import numpy as np
import pytest

from tests import keras3_zoo
from tests.e2e_fixtures import tfjs_predict
from tests.test_end_to_end import create_and_upload
from tests.tokens import api_token

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["disk"], indirect=True)]


def keras3_gru():
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 4), name="sequence")
    x = keras.layers.GRU(5, return_sequences=True, name="gru")(inputs)  # reset_after=True, Keras' default
    x = keras.layers.Bidirectional(keras.layers.GRU(3), name="bi_gru")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="scores")(x))


def keras3_transformer_block():
    import keras

    keras.utils.set_random_seed(4)
    tokens = keras.Input((8,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(50, 16, name="embed")(tokens)
    attended = keras.layers.MultiHeadAttention(2, 8, name="attention")(x, x)
    x = keras.layers.LayerNormalization(name="norm1")(keras.layers.Add()([x, attended]))
    x = keras.layers.Dense(16, activation="gelu", name="ffn")(x)
    x = keras.layers.LayerNormalization(name="norm2")(x)
    return keras.Model(tokens, keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling1D()(x)))


def sequential_hard_silu():
    """hard_silu is x * hard_sigmoid(x): two branches, which a Sequential model cannot hold."""
    import keras

    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, activation="hard_silu", name="conv"),
         keras.layers.GlobalAveragePooling2D(name="pool"), keras.layers.Dense(4, name="logits")],
    )  # fmt: skip
    keras3_zoo.perturb(model, 5)
    return model


def bilinear_decoder():
    import keras

    keras.utils.set_random_seed(6)
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="encode")(inputs)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name="upsample")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="mask")(x))
    keras3_zoo.perturb(model, 6)
    return model


def tf_keras_gru():
    import tf_keras

    tf_keras.utils.set_random_seed(7)
    inputs = tf_keras.Input((6, 4), name="sequence")
    x = tf_keras.layers.GRU(5, name="gru")(inputs)  # reset_after=True, tf-keras' default too
    return tf_keras.Model(inputs, tf_keras.layers.Dense(2, name="scores")(x))


CASES = {
    # name: (build, file suffix, why it cannot be a layers model)
    "gru": (keras3_gru, "keras", "Layer 'gru' (GRU) uses reset_after=True (the Keras 3 default)"),
    "transformer": (
        keras3_transformer_block,
        "keras",
        "Layer 'attention' (MultiHeadAttention) has no TF.js equivalent",
    ),
    "sequential-hard-silu": (
        sequential_hard_silu,
        "keras",
        "Layer 'conv' (Conv2D) uses hard_silu, which TF.js layers can express only in a functional model",
    ),
    "bilinear-decoder": (bilinear_decoder, "keras", "Layer 'upsample' (UpSampling2D) uses non-nearest interpolation"),
    "tf-keras-gru": (tf_keras_gru, "h5", "Layer 'gru' (GRU) uses reset_after=True (the Keras default)"),
}


def pooled_features(model, inputs) -> np.ndarray:
    """What a graph model is used for as a feature extractor: the output of its
    global pooling, computed by Keras."""
    import keras

    pooling = [layer for layer in model.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D)][-1]
    return keras.Model(model.inputs, pooling.output).predict(inputs[0], verbose=0)


@pytest.fixture(scope="module")
def graph_uploads(tmp_path_factory) -> dict:
    directory = tmp_path_factory.mktemp("graph-uploads")
    rng = np.random.default_rng(11)
    files = {}
    for name, (build, suffix, reason) in CASES.items():
        model = build()
        path = directory / f"{name}.{suffix}"
        model.save(path)
        inputs = []
        for tensor in model.inputs:
            shape = [2, *list(tensor.shape)[1:]]
            dtype = str(getattr(tensor.dtype, "name", tensor.dtype))
            inputs.append(
                rng.integers(0, 50, shape).astype(np.int32)
                if "int" in dtype
                else rng.uniform(-1, 1, shape).astype(np.float32)
            )
        expected = model.predict(inputs[0] if len(inputs) == 1 else inputs, verbose=0)
        files[name] = (path, inputs, expected if isinstance(expected, list) else [expected], reason)
        if name == "sequential-hard-silu":
            files["features"] = pooled_features(model, inputs)
    return files


def test_keras_models_tfjs_layers_cannot_express_are_served_as_proven_graph_models(
    registry, owner, graph_uploads, tmp_path
):
    token = api_token(owner)
    features = graph_uploads.pop("features")
    for name, (path, inputs, expected, reason) in graph_uploads.items():
        version = create_and_upload(registry, token, name, path)
        assert version["status"] == "ready", f"{name}: {version['error']}"
        assert version["format"] == "graph-model", name
        assert reason in version["graph_reason"] and version["graph_reason"].endswith("Served as a graph model.")
        assert version["snippet"].startswith("const model = await tf.loadGraphModel(")
        assert version["parity"]["passed"] is True and version["parity"]["max_abs_error"] <= 1e-4, name
        predicted = tfjs_predict(version["model_url"], "graph", inputs, tmp_path)
        for got, want in zip(predicted, expected, strict=True):
            assert np.abs(want).max() > 1e-3, f"{name}: degenerate outputs prove nothing"
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3, err_msg=name)

    # A graph model as a transfer-learning base: ask for a named node's output.
    api = registry.api(token)
    nodes = api.get(f"{registry.url}/api/v1/models/alice/sequential-hard-silu/versions/1/layers/").json()
    pooled = [node for node in nodes if node["class_name"] == "Mean"][-1]  # the global average pooling
    assert pooled["cut_url"] is None
    assert pooled["snippet"] == f"const features = await model.executeAsync(inputs, '{pooled['name']}');"
    served = api.get(f"{registry.url}/api/v1/models/alice/sequential-hard-silu/versions/1/").json()["model_url"]
    inputs = graph_uploads["sequential-hard-silu"][1]
    (got,) = tfjs_predict(served, "graph", inputs, tmp_path, outputs=[pooled["name"]])
    np.testing.assert_allclose(got, features, atol=1e-4, rtol=1e-3)


def test_keras3_model_export_savedmodels_with_while_loops_become_graph_models(registry, owner, tmp_path):
    import keras

    from tests.zoo import zip_directory

    keras.utils.set_random_seed(8)
    inputs = keras.Input((6, 4), name="sequence")
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GRU(3)(inputs)))  # a while loop in the graph
    model.export(str(tmp_path / "exported"), verbose=False)  # what Keras 3 recommends for serving
    zip_directory(tmp_path / "exported", tmp_path / "exported.zip")
    xs = [np.random.default_rng(9).uniform(-1, 1, (2, 6, 4)).astype(np.float32)]
    expected = model.predict(xs[0], verbose=0)

    token = api_token(owner)
    for signature in ("serving_default", "serve"):
        version = create_and_upload(
            registry, token, f"exported-{signature.replace('_', '-')}", tmp_path / "exported.zip", signature=signature
        )
        assert version["status"] == "ready", version["error"]
        assert (version["input_format"], version["format"]) == ("saved-model", "graph-model")
        assert version["parity"]["passed"] is True
        (predicted,) = tfjs_predict(version["model_url"], "graph", xs, tmp_path)
        np.testing.assert_allclose(predicted, expected, atol=1e-4, rtol=1e-3)


def test_keras_upload_asked_for_both_gets_a_layers_model_and_a_graph_model_each_proven(registry, owner, tmp_path):
    import keras

    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), classifier_activation=None)
    keras3_zoo.perturb(model, 14)
    model.save(tmp_path / "mnv3.keras")
    inputs = [np.random.default_rng(14).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)]
    expected = model.predict(inputs[0], verbose=0)

    token = api_token(owner)
    version = create_and_upload(registry, token, "mnv3-both", tmp_path / "mnv3.keras", variants=["graph"])
    assert version["status"] == "ready", version["error"]
    assert version["format"] == "layers-model"
    (graph,) = version["variants"]
    assert (graph["variant"], graph["format"], graph["status"]) == ("graph", "graph-model", "ready"), graph["error"]
    assert graph["model_url"] == f"{registry.url}/m/alice/mnv3-both/1/graph/model.json"
    assert graph["snippet"] == f"const model = await tf.loadGraphModel('{graph['model_url']}');"
    assert graph["parity"]["passed"] is True and graph["parity"]["max_abs_error"] <= 1e-4
    assert np.abs(expected).max() > 1e-3, "degenerate outputs prove nothing"
    (from_layers,) = tfjs_predict(version["model_url"], "layers", inputs, tmp_path)
    (from_graph,) = tfjs_predict(graph["model_url"], "graph", inputs, tmp_path)
    np.testing.assert_allclose(from_layers, expected, atol=1e-4, rtol=1e-3)
    np.testing.assert_allclose(from_graph, expected, atol=1e-4, rtol=1e-3)

    # Asked for again, it is not made twice; a graph model has no graph variant.
    api = registry.api(token)
    again = api.post(f"{registry.url}/api/v1/models/alice/mnv3-both/versions/1/variants/", json={"variant": "graph"})
    assert again.status_code == 202 and again.json()["variants"][0]["status"] == "ready"

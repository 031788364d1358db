"""Models built inside the tests (nothing is downloaded), with the inputs
and the TensorFlow predictions that TF.js must reproduce."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Built:
    path: Path
    kind: str  # "layers" or "graph"
    inputs: list[np.ndarray]
    expected: list[np.ndarray]


def _inputs(*shapes: tuple[int, ...], seed: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, size=shape).astype(np.float32) for shape in shapes]


def keras2_cnn_h5(directory: Path) -> Built:
    """A small tf-keras (Keras 2) functional CNN saved as .h5."""
    import tf_keras as keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((12, 12, 3), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(5, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs)
    path = directory / "cnn.h5"
    model.save(path)
    xs = _inputs((3, 12, 12, 3))
    return Built(path, "layers", xs, [model.predict(xs[0], verbose=0)])


def keras2_lambda_h5(directory: Path, marker: Path) -> Path:
    """A tf-keras model with a Lambda layer that would create `marker` if run."""
    import tf_keras as keras

    def side_effect(x, marker=str(marker)):
        open(marker, "w").close()
        return x

    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(side_effect, name="sneaky")(keras.layers.Dense(2)(inputs))
    model = keras.Model(inputs, outputs)
    if marker.exists():
        marker.unlink()
    path = directory / "lambda.h5"
    model.save(path)
    marker.unlink(missing_ok=True)  # saving traces the function once
    return path


def keras2_weights_only_h5(directory: Path) -> Path:
    import tf_keras as keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = directory / "weights.h5"
    model.save_weights(path)
    return path


def saved_model_zip(directory: Path) -> Built:
    """A plain tf.Module with a serving signature, zipped."""
    import tensorflow as tf

    class Scorer(tf.Module):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(3)
            self.w = tf.Variable(rng.normal(size=(6, 4)).astype(np.float32))
            self.b = tf.Variable(rng.normal(size=(4,)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="x")])
        def __call__(self, x):
            return {"scores": tf.nn.sigmoid(tf.matmul(x, self.w) + self.b)}

    module = Scorer()
    export_dir = directory / "scorer"
    tf.saved_model.save(module, str(export_dir), signatures=module.__call__)
    path = directory / "scorer.zip"
    zip_directory(export_dir, path)
    xs = _inputs((5, 6))
    return Built(path, "graph", xs, [module(tf.constant(xs[0]))["scores"].numpy()])


def zip_directory(source: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, _, files in os.walk(source):
            for name in files:
                full = Path(root) / name
                archive.write(full, full.relative_to(source).as_posix())


def mobilenet_h5(directory: Path, cut_at: str = "conv_pw_13_relu") -> tuple[Built, list[np.ndarray]]:
    """keras.applications MobileNet (alpha 0.25, random weights) as .h5, with
    TensorFlow's outputs for the full model and for the model cut at `cut_at`."""
    import tf_keras as keras

    keras.utils.set_random_seed(5)
    model = keras.applications.MobileNet(weights=None, alpha=0.25, input_shape=(128, 128, 3), classes=10)
    _randomise_batch_norm(model)
    path = directory / "mobilenet.h5"
    model.save(path)
    xs = _inputs((2, 128, 128, 3))
    base = keras.Model(model.inputs, model.get_layer(cut_at).output)
    return Built(path, "layers", xs, [model.predict(xs[0], verbose=0)]), [base.predict(xs[0], verbose=0)]


def _randomise_batch_norm(model) -> None:
    """Fresh BatchNormalization statistics are 0/1; make them real-looking."""
    rng = np.random.default_rng(11)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                    rng.uniform(-0.2, 0.2, beta.shape).astype(np.float32),
                    rng.uniform(-0.2, 0.2, mean.shape).astype(np.float32),
                    rng.uniform(0.5, 1.5, variance.shape).astype(np.float32),
                ]
            )


def keras2_saved_model_zip(directory: Path) -> Built:
    """A tf-keras model saved with model.save(dir) (legacy Keras SavedModel), zipped."""
    import tf_keras as keras

    keras.utils.set_random_seed(2)
    inputs = keras.Input((10,), name="features")
    x = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs)
    _randomise_batch_norm(model)
    export_dir = directory / "keras_savedmodel"
    model.save(export_dir, save_format="tf")
    path = directory / "keras_savedmodel.zip"
    zip_directory(export_dir, path)
    xs = _inputs((4, 10))
    return Built(path, "layers", xs, [model.predict(xs[0], verbose=0)])


def keras2_wrapped_lambda_h5(directory: Path, marker: Path) -> Path:
    """A Lambda hidden inside TimeDistributed, which would create `marker` if run."""
    import tf_keras as keras

    def side_effect(x, marker=str(marker)):
        open(marker, "w").close()
        return x

    inputs = keras.Input((3, 4))
    outputs = keras.layers.TimeDistributed(keras.layers.Lambda(side_effect, name="hidden_code"), name="wrapper")(inputs)
    model = keras.Model(inputs, outputs)
    path = directory / "wrapped-lambda.h5"
    model.save(path)
    marker.unlink(missing_ok=True)  # saving traces the function once
    return path


def retrained_head_pair(directory: Path) -> tuple[Path, Path, list[np.ndarray], list[np.ndarray]]:
    """A MobileNet-0.25 base with a 5-class head, and the same model after
    retraining only the head: two .h5 files whose base weights are equal.
    Returns both paths, inputs, and TensorFlow's outputs of the second."""
    import tf_keras as keras

    keras.utils.set_random_seed(8)
    base = keras.applications.MobileNet(
        weights=None, alpha=0.25, input_shape=(128, 128, 3), include_top=False, pooling="avg"
    )
    _randomise_batch_norm(base)
    outputs = keras.layers.Dense(5, activation="softmax", name="head")(base.output)
    model = keras.Model(base.input, outputs)
    first = directory / "transfer-v1.h5"
    model.save(first)
    rng = np.random.default_rng(9)
    head = model.get_layer("head")
    head.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in head.get_weights()])
    second = directory / "transfer-v2.h5"
    model.save(second)
    xs = _inputs((2, 128, 128, 3))
    return first, second, xs, [model.predict(xs[0], verbose=0)]


def two_signature_saved_model_zip(directory: Path) -> tuple[Path, list[np.ndarray], dict[str, np.ndarray]]:
    """A SavedModel with two signatures, `serving_default` and `logits`."""
    import tensorflow as tf

    class Classifier(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.random.default_rng(4).normal(size=(5, 3)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="x")])
        def logits(self, x):
            return {"logits": tf.matmul(x, self.w)}

        @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="x")])
        def probabilities(self, x):
            return {"probabilities": tf.nn.softmax(tf.matmul(x, self.w))}

    module = Classifier()
    export_dir = directory / "two-signatures"
    tf.saved_model.save(
        module, str(export_dir), signatures={"serving_default": module.probabilities, "logits": module.logits}
    )
    path = directory / "two-signatures.zip"
    zip_directory(export_dir, path)
    xs = _inputs((3, 5))
    expected = {
        "serving_default": module.probabilities(tf.constant(xs[0]))["probabilities"].numpy(),
        "logits": module.logits(tf.constant(xs[0]))["logits"].numpy(),
    }
    return path, xs, expected


def tfjs_zips(directory: Path) -> dict[str, Built]:
    """Models already converted with tensorflowjs (model.json + shards),
    zipped inside a folder, as users download them from elsewhere."""
    from tensorflowjs.converters import converter, tf_saved_model_conversion_v2

    cnn, scorer = keras2_cnn_h5(directory), saved_model_zip(directory)
    layers_dir = directory / "tfjs-layers" / "web_model"
    converter.dispatch_keras_h5_to_tfjs_layers_model_conversion(str(cnn.path), output_dir=str(layers_dir))
    graph_dir = directory / "tfjs-graph" / "web_model"
    tf_saved_model_conversion_v2.convert_tf_saved_model(str(directory / "scorer"), str(graph_dir))
    built = {}
    for name, model_dir, original in (("layers", layers_dir.parent, cnn), ("graph", graph_dir.parent, scorer)):
        path = directory / f"tfjs-{name}.zip"
        zip_directory(model_dir, path)
        built[name] = Built(path, original.kind, original.inputs, original.expected)
    return built


def keras2_layer_zoo() -> dict:
    """tf-keras (Keras 2) models covering the layer list TF.js supports."""
    import tf_keras as keras

    layers = keras.layers
    keras.utils.set_random_seed(21)
    rng = np.random.default_rng(21)
    models = {}

    seq = keras.Input((12, 4), name="sequence")
    x = layers.Conv1D(6, 3, padding="same", activation="relu", name="conv1d")(seq)
    x = layers.MaxPooling1D(2, name="pool1d")(x)
    x = layers.LayerNormalization(name="layer_norm")(x)
    x = layers.Bidirectional(layers.LSTM(5, return_sequences=True), name="bi_lstm")(x)
    x = layers.GRU(4, reset_after=False, return_sequences=True, name="gru")(x)
    x = layers.SimpleRNN(3, name="simple_rnn")(x)
    models["recurrent"] = (keras.Model(seq, layers.Dense(2, name="out")(x)), [rng.uniform(-1, 1, (2, 12, 4))])

    image = keras.Input((16, 16, 3), name="image")
    x = layers.ZeroPadding2D(1, name="pad")(image)
    x = layers.SeparableConv2D(4, 3, name="separable")(x)
    x = layers.Conv2DTranspose(4, 3, strides=2, name="transpose")(x)
    x = layers.AveragePooling2D(2, name="avg_pool")(x)
    x = layers.ReLU(max_value=6.0, name="relu6")(x)
    x = layers.Permute((2, 1, 3), name="permute")(x)
    x = layers.GlobalMaxPooling2D(name="gmp")(x)
    x = layers.Reshape((2, 2), name="reshape")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    outputs = layers.Softmax(name="softmax")(layers.Dense(3, name="logits")(x))
    models["convolutions"] = (keras.Model(image, outputs), [rng.uniform(-1, 1, (2, 16, 16, 3))])

    ids = keras.Input((6,), dtype="int32", name="ids")
    feats = keras.Input((8,), name="feats")
    text = layers.SimpleRNN(5, name="text_rnn")(layers.Embedding(20, 4, name="embedding")(ids))
    inner = keras.Sequential(
        [keras.Input((8,)), layers.Dense(5, name="inner_dense"), layers.BatchNormalization(name="inner_bn")],
        name="inner",
    )
    dense = inner(feats)
    merged = layers.Concatenate(name="concat")(
        [
            layers.Add(name="add")([text, dense]),
            layers.Multiply(name="mul")([text, dense]),
            layers.Average(name="avg")([text, dense]),
        ]
    )
    head = layers.Activation("tanh", name="tanh")(merged)
    models["multi_io"] = (
        keras.Model([ids, feats], [layers.Dense(2, name="a")(head), layers.Dense(1, name="b")(head)]),
        [rng.integers(0, 20, (2, 6)).astype(np.int32), rng.uniform(-1, 1, (2, 8))],
    )
    for model, _ in models.values():
        _randomise_batch_norm(model)
    return {
        name: (model, [x if x.dtype == np.int32 else x.astype(np.float32) for x in inputs])
        for name, (model, inputs) in models.items()
    }

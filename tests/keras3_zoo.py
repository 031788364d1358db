"""Keras 3 models built inside the tests (nothing is downloaded), saved both as
`.keras` and as a Keras-3 `.h5`, with the inputs TF.js must reproduce them on."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parent.parent
PREDICT_JS = PROJECT_DIR / "converter" / "js" / "predict.mjs"


@dataclass
class Case:
    model: object  # keras.Model
    inputs: list[np.ndarray]


def floats(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.uniform(-1, 1, size=shape).astype(np.float32)


def perturb(model, seed: int) -> None:
    """Give biases and normalisation parameters non-default values, so a weight
    that lands in the wrong place (or nowhere) changes the predictions."""
    rng = np.random.default_rng(seed)
    ranges = {
        "bias": (-0.1, 0.1),
        "gamma": (0.5, 1.5),
        "beta": (-0.2, 0.2),
        "moving_mean": (-0.2, 0.2),
        "moving_variance": (0.5, 1.5),
    }
    for variable in model.weights:
        short = variable.path.rsplit("/", 1)[-1]
        if short in ranges:
            low, high = ranges[short]
            variable.assign(rng.uniform(low, high, size=variable.shape).astype(np.float32))


def save_forms(model, directory: Path, stem: str, forms: tuple[str, ...] = ("keras", "h5")) -> dict[str, Path]:
    paths = {form: directory / f"{stem}.{form}" for form in forms}
    for path in paths.values():
        model.save(path)
    return paths


def tfjs_predict_dir(model_dir: Path, inputs: list[np.ndarray], work: Path) -> list[np.ndarray]:
    """Load a converted directory with tf.loadLayersModel in Node and run it."""
    spec = {
        "inputs": [
            {
                "shape": list(x.shape),
                "data": x.ravel().tolist(),
                "dtype": "int32" if x.dtype.kind in "iu" else "float32",
            }
            for x in inputs
        ]
    }
    inputs_path = work / f"{model_dir.name}-inputs.json"
    inputs_path.write_text(json.dumps(spec))
    command = ["node", str(PREDICT_JS), "--dir", str(model_dir), "--kind", "layers", "--inputs", str(inputs_path)]
    done = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = json.loads(done.stdout)["outputs"]
    return [np.asarray(out["data"], dtype=np.float32).reshape(out["shape"]) for out in outputs]


# --- The models -------------------------------------------------------------------------


def dense_sequential() -> Case:
    """Sequential: Dense with L2/L1 kernel regularizers and constraints, normalisation,
    Dropout, and activations; compiled and trained so the file carries optimizer state."""
    import keras

    keras.utils.set_random_seed(11)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((10,)),
            layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3), name="d_l2"),
            layers.BatchNormalization(name="bn"),
            layers.Dropout(0.3, name="drop"),
            layers.Dense(12, activation="tanh", kernel_regularizer=keras.regularizers.L1(1e-4),
                         bias_regularizer=keras.regularizers.L1L2(1e-4, 1e-3),
                         kernel_constraint=keras.constraints.MaxNorm(3.0), name="d_l1"),
            layers.LayerNormalization(name="ln"),
            layers.Dense(8, activation="elu", kernel_initializer="lecun_normal", name="d_elu"),
            layers.BatchNormalization(center=False, name="bn_no_beta"),
            layers.Dense(6, use_bias=False, name="d_nobias"),
            layers.LayerNormalization(scale=False, name="ln_no_gamma"),
            layers.Activation("softmax", name="probs"),
        ],
        name="dense_seq",
    )  # fmt: skip
    rng = np.random.default_rng(1)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = floats(rng, 32, 10)
    y = np.eye(6, dtype=np.float32)[rng.integers(0, 6, 32)]
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    perturb(model, 1)
    return Case(model, [floats(rng, 4, 10)])


def adapted_normalization() -> Case:
    """Normalization layers adapted to data (per-feature means and variances
    far from 0 and 1), on the last axis and on an explicit positive axis:
    they become TF.js BatchNormalization layers with the same numbers."""
    import keras

    keras.utils.set_random_seed(13)
    rng = np.random.default_rng(13)
    data = rng.normal(loc=[3.0, -2.0, 0.5, 10.0], scale=[0.5, 4.0, 1.0, 0.1], size=(64, 4)).astype(np.float32)
    first = keras.layers.Normalization(name="features_norm")
    first.adapt(data)
    images = rng.normal(loc=[5.0, -1.0, 2.0], scale=[2.0, 0.3, 1.0], size=(16, 6, 6, 3)).astype(np.float32)
    second = keras.layers.Normalization(axis=3, name="pixel_norm")
    second.adapt(images)
    features, pixels = keras.Input((4,), name="features"), keras.Input((6, 6, 3), name="pixels")
    x = keras.layers.Dense(3, name="dense")(first(features))
    y = keras.layers.GlobalAveragePooling2D(name="gap")(keras.layers.Conv2D(3, 3, name="conv")(second(pixels)))
    model = keras.Model([features, pixels], keras.layers.Concatenate(name="joined")([x, y]))
    return Case(model, [data[:4], images[:4]])


def unbuilt_sequential() -> Case:
    """A Sequential without an Input, built by model.build(): no InputLayer in its config."""
    import keras

    keras.utils.set_random_seed(12)
    model = keras.Sequential([keras.layers.Dense(5, activation="sigmoid"), keras.layers.Dense(3)], name="no_input")
    model.build((None, 7))
    perturb(model, 2)
    return Case(model, [floats(np.random.default_rng(2), 3, 7)])


def text_sequential() -> Case:
    """A typical text classifier: Sequential, Embedding(mask_zero=True), stacked RNNs."""
    import keras

    keras.utils.set_random_seed(22)
    layers = keras.layers
    model = keras.Sequential(
        [keras.Input((8,), dtype="int32"), layers.Embedding(30, 6, mask_zero=True),
         layers.Dropout(0.2), layers.LSTM(5, return_sequences=True), layers.GRU(4, reset_after=False),
         layers.Dense(3, activation="softmax")],
        name="text",
    )  # fmt: skip
    perturb(model, 12)
    token_ids = np.random.default_rng(12).integers(1, 30, size=(3, 8)).astype(np.int32)
    token_ids[0, 5:] = 0
    token_ids[1, 2:] = 0
    return Case(model, [token_ids])


def shape_rewrites_sequential() -> Case:
    """Sequential layers that Modelport rewrites using shapes, which a .keras file records
    for the layers with weights around them: causal Conv1D, Reshape with -1, Softmax
    over axis 1, global pooling with keepdims=True."""
    import keras

    keras.utils.set_random_seed(23)
    layers = keras.layers
    model = keras.Sequential(
        [keras.Input((12, 3)), layers.Conv1D(4, 3, padding="causal", dilation_rate=2, name="causal"),
         layers.Softmax(axis=1, name="over_time"), layers.Conv1D(6, 3, name="conv"),
         layers.Reshape((-1, 12), name="fold"), layers.Conv1D(5, 2, name="conv2"),
         layers.GlobalMaxPooling1D(keepdims=True, name="gmp_keep"), layers.Conv1D(3, 1, name="pointwise"),
         layers.Flatten(name="flat"), layers.Dense(3, name="out")],
        name="shapes",
    )  # fmt: skip
    perturb(model, 13)
    return Case(model, [floats(np.random.default_rng(13), 3, 12, 3)])


def conv2d_functional() -> Case:
    """Data augmentation (an identity at inference), Conv2D, DepthwiseConv2D,
    SeparableConv2D, Conv2DTranspose, pooling, padding, cropping, upsampling,
    Permute, ReLU, global pooling with keepdims=True."""
    import keras

    keras.utils.set_random_seed(13)
    layers = keras.layers
    image = keras.Input((16, 16, 3), name="image")
    augment = keras.Sequential(
        [layers.RandomFlip(), layers.RandomRotation(0.1), layers.RandomZoom(0.1), layers.RandomTranslation(0.1, 0.1),
         layers.RandomContrast(0.2), layers.Identity()],
        name="augment",
    )  # fmt: skip
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="conv")(augment(image))
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu6", name="dw")(x)
    x = layers.SeparableConv2D(8, 3, padding="same", depth_multiplier=2, name="sep")(x)
    x = layers.MaxPooling2D(2, name="max2d")(x)
    x = layers.ZeroPadding2D(((1, 0), (0, 1)), name="pad")(x)
    x = layers.Conv2DTranspose(5, 3, strides=2, padding="same", activation="selu", name="deconv")(x)
    x = layers.AveragePooling2D(2, strides=1, name="avg2d")(x)
    x = layers.ReLU(max_value=4.0, name="relu_cap")(x)
    x = layers.Cropping2D(((1, 1), (2, 0)), name="crop")(x)
    x = layers.UpSampling2D(2, name="up")(x)
    x = layers.Permute((2, 1, 3), name="perm")(x)
    x = layers.Conv2D(4, 3, strides=2, dilation_rate=1, activation="swish", name="conv_s2")(x)
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="gap_keep")(x)
    maxed = layers.GlobalMaxPooling2D(keepdims=True, name="gmp_keep")(x)
    x = layers.Concatenate(axis=-1, name="cat")([pooled, maxed])
    x = layers.Flatten(name="flat")(x)
    plain = layers.GlobalAveragePooling2D(name="gap")(layers.Rescaling(0.5, offset=0.1, name="rescale")(image))
    x = layers.Concatenate(name="cat2")([x, plain])
    out = layers.Dense(5, activation="softmax", name="head")(x)
    model = keras.Model(image, out, name="conv2d_net")
    perturb(model, 3)
    return Case(model, [floats(np.random.default_rng(3), 2, 16, 16, 3)])


def conv1d_functional() -> Case:
    """Conv1D (causal, dilated), 1D pooling, LeakyReLU/ELU/PReLU/Softmax layers, GAP1D keepdims."""
    import keras

    keras.utils.set_random_seed(14)
    layers = keras.layers
    seq = keras.Input((20, 4), name="seq")
    x = layers.Conv1D(6, 3, padding="causal", dilation_rate=2, name="causal")(seq)
    x = layers.LeakyReLU(negative_slope=0.2, name="leaky")(x)
    x = layers.MaxPooling1D(2, name="max1d")(x)
    x = layers.Conv1D(8, 3, strides=1, padding="valid", activation="gelu", name="conv1d")(x)
    x = layers.ELU(name="elu_layer")(x)
    x = layers.AveragePooling1D(2, padding="same", name="avg1d")(x)
    x = layers.PReLU(name="prelu")(x)
    x = layers.Concatenate(name="with_softmax")([x, layers.Softmax(axis=1, name="softmax_t")(x)])
    a = layers.GlobalAveragePooling1D(name="gap1d")(x)
    b = layers.GlobalMaxPooling1D(name="gmp1d")(x)
    c = layers.Flatten(name="flat_keep")(layers.GlobalAveragePooling1D(keepdims=True, name="gap1d_keep")(x))
    x = layers.Concatenate(name="cat")([a, b, c])
    x = layers.Dense(6, activation="mish", name="dense")(x)
    x = layers.RepeatVector(3, name="repeat")(x)
    out = layers.Flatten(name="out")(x)
    model = keras.Model(seq, out, name="conv1d_net")
    perturb(model, 4)
    return Case(model, [floats(np.random.default_rng(4), 3, 20, 4)])


def recurrent_functional() -> Case:
    """Embedding (int inputs), SimpleRNN, Bidirectional LSTM, GRU (reset_after=False),
    LSTM, TimeDistributed Dense, return_sequences on and off."""
    import keras

    keras.utils.set_random_seed(15)
    layers = keras.layers
    tokens = keras.Input((9,), dtype="int32", name="tokens")
    x = layers.Embedding(40, 8, name="embed")(tokens)
    x = layers.SimpleRNN(6, return_sequences=True, name="simple")(x)
    x = layers.Bidirectional(layers.LSTM(5, return_sequences=True, name="lstm_bi"), name="bi")(x)
    x = layers.GRU(4, reset_after=False, return_sequences=True, name="gru_seq")(x)
    x = layers.TimeDistributed(layers.Dense(3, activation="softsign"), name="td")(x)
    x = layers.Bidirectional(
        layers.GRU(3, reset_after=False, recurrent_activation="sigmoid"), merge_mode="sum", name="bi_gru"
    )(x)
    y = layers.LSTM(4, name="lstm_last")(layers.Embedding(40, 4, name="embed2")(tokens))
    x = layers.Concatenate(name="cat")([x, y])
    out = layers.Dense(2, name="out")(x)
    model = keras.Model(tokens, out, name="rnn_net")
    perturb(model, 5)
    return Case(model, [np.random.default_rng(5).integers(0, 40, size=(3, 9)).astype(np.int32)])


def two_inputs_two_outputs() -> Case:
    """Functional with 2 inputs and 2 outputs; merges; a Sequential and a functional
    model nested as layers, the Sequential shared by both inputs."""
    import keras

    keras.utils.set_random_seed(16)
    layers = keras.layers
    # Batch-norm statistics and a frozen layer in the middle of nested models put
    # their weights out of creation order in a legacy .h5.
    shared = keras.Sequential(
        [keras.Input((8,)), layers.Dense(6, activation="relu", name="inner_dense"),
         layers.BatchNormalization(name="inner_bn"), layers.Dense(6, name="inner_out")],
        name="shared_seq",
    )  # fmt: skip
    sub_in = keras.Input((6,))
    sub_frozen = layers.Dense(6, activation="sigmoid", name="sub_frozen")
    sub_frozen.trainable = False
    sub_out = layers.Dense(5, name="sub_dense")(sub_frozen(sub_in))
    sub = keras.Model(sub_in, sub_out, name="sub_fn")
    left = keras.Input((8,), name="left")
    right = keras.Input((8,), name="right")
    a = shared(left)
    b = shared(right)
    total = layers.Add(name="add")([a, b])
    product = layers.Multiply(name="mul")([a, b])
    mean = layers.Average(name="avg")([total, product])
    high = layers.Maximum(name="max")([a, b])
    low = layers.Minimum(name="min")([a, b])
    dotted = layers.Dot(axes=1, name="dot")([a, b])
    joined = layers.Concatenate(name="cat")([sub(mean), high, low, dotted])
    frozen = layers.Dense(4, name="frozen_dense")
    frozen.trainable = False
    scores = layers.Dense(3, activation="softmax", name="scores")(frozen(joined))
    value = layers.Dense(1, name="value")(layers.Reshape((-1, 4), name="rs")(layers.Dense(16, name="to16")(joined)))
    model = keras.Model([left, right], [scores, value], name="two_by_two")
    perturb(model, 6)
    rng = np.random.default_rng(6)
    return Case(model, [floats(rng, 4, 8), floats(rng, 4, 8)])


def masks_noise_and_3d() -> Case:
    """Masking and Embedding(mask_zero) masks carried through Dense, Bidirectional and
    LayerNormalization into RNNs, LSTM return_state, a shared
    Dense, inference-time noise layers, 3D convolutions and pooling, and a
    Sequential nested in a Sequential."""
    import keras

    keras.utils.set_random_seed(20)
    layers = keras.layers
    seq = keras.Input((7, 3), name="seq")
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    volume = keras.Input((6, 6, 6, 2), name="volume")
    x = layers.SpatialDropout1D(0.2, name="spatial_drop")(layers.Masking(0.0, name="mask")(seq))
    _, state_h, state_c = layers.LSTM(4, return_state=True, name="lstm_state")(x)
    t = layers.Dense(6, name="dense_masked")(layers.Embedding(20, 5, mask_zero=True, name="embed_mask")(tokens))
    t = layers.Bidirectional(layers.LSTM(3, return_sequences=True), name="bi_masked")(t)
    t = layers.GRU(3, reset_after=False, name="gru_masked")(layers.LayerNormalization(name="ln_masked")(t))
    v = layers.Conv3D(3, 2, activation="softplus", name="conv3d")(volume)
    v = layers.MaxPooling3D(2, name="max3d")(v)
    v = layers.AveragePooling3D(1, name="avg3d")(v)
    v = layers.Conv3DTranspose(2, 2, strides=2, name="deconv3d")(v)
    v = layers.Flatten(name="flat3d")(v)
    shared = layers.Dense(4, activation="silu", name="shared_dense")
    joined = layers.Concatenate(name="cat")([shared(state_h), shared(state_c), t, v])
    joined = layers.GaussianNoise(0.1, name="noise")(joined)
    joined = layers.GaussianDropout(0.1, name="gdrop")(joined)
    joined = layers.AlphaDropout(0.1, name="adrop")(joined)
    head = keras.Sequential(
        [keras.Input(joined.shape[1:]), keras.Sequential([layers.Dense(6, name="deep")], name="deeper"),
         layers.Activation("log_softmax", name="log_probs")],
        name="head",
    )  # fmt: skip
    model = keras.Model([seq, tokens, volume], head(joined), name="masks_noise_3d")
    perturb(model, 10)
    rng = np.random.default_rng(10)
    sequences = floats(rng, 3, 7, 3)
    sequences[0, 4:] = 0.0  # masked steps
    sequences[1, :2] = 0.0
    token_ids = rng.integers(1, 20, size=(3, 6)).astype(np.int32)
    token_ids[0, 3:] = 0
    token_ids[2, 1:] = 0
    return Case(model, [sequences, token_ids, floats(rng, 3, 6, 6, 6, 2)])


def mobilenet() -> Case:
    import keras

    keras.utils.set_random_seed(17)
    model = keras.applications.MobileNet(
        weights=None, alpha=0.25, input_shape=(128, 128, 3), classifier_activation=None
    )
    perturb(model, 7)
    return Case(model, [floats(np.random.default_rng(7), 2, 128, 128, 3)])


def mobilenet_v2() -> Case:
    import keras

    keras.utils.set_random_seed(18)
    model = keras.applications.MobileNetV2(
        weights=None, alpha=0.35, input_shape=(96, 96, 3), classifier_activation=None
    )
    perturb(model, 8)
    return Case(model, [floats(np.random.default_rng(8), 2, 96, 96, 3)])


def frozen_base_in_sequential() -> Case:
    """Transfer learning as usually written: a frozen MobileNetV2 base (a functional
    model with batch norm) inside a Sequential with a new head."""
    import keras

    keras.utils.set_random_seed(21)
    base = keras.applications.MobileNetV2(weights=None, alpha=0.35, include_top=False, input_shape=(64, 64, 3))
    base.trainable = False
    model = keras.Sequential(
        [keras.Input((64, 64, 3)), base, keras.layers.GlobalAveragePooling2D(), keras.layers.Dropout(0.2),
         keras.layers.Dense(4)],
        name="transfer",
    )  # fmt: skip
    perturb(model, 11)
    return Case(model, [floats(np.random.default_rng(11), 2, 64, 64, 3)])


def resnet50() -> Case:
    import keras

    keras.utils.set_random_seed(19)
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    perturb(model, 9)
    return Case(model, [floats(np.random.default_rng(9), 1, 64, 64, 3)])


def masked_layer_models() -> dict[str, object]:
    """Models whose masks TF.js would apply differently from Keras."""
    import keras

    layers = keras.layers
    tokens = keras.Input((6,), dtype="int32")
    embedded = layers.Embedding(10, 4, mask_zero=True)(tokens)
    pooled = layers.GlobalAveragePooling1D(name="masked_mean")(embedded)
    # Conv1D drops the mask in Keras; TF.js would still hand it to the RNN.
    unmasked = layers.SimpleRNN(2, name="rnn_after_conv")(layers.Conv1D(3, 1)(embedded))
    return {"masked_mean": keras.Model(tokens, pooled), "rnn_after_conv": keras.Model(tokens, unmasked)}


def lambda_model(marker: Path):
    """A Keras 3 model whose Lambda layer would create `marker` if its code ran."""
    import keras

    def side_effect(x, marker=str(marker)):
        open(marker, "w").close()
        return x

    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(2, name="dense")(inputs)
    outputs = keras.layers.Lambda(side_effect, name="sneaky")(hidden)
    return keras.Model(inputs, outputs, name="with_lambda")


def hard_activations() -> Case:
    """Keras 3 activations TF.js lacks or computes differently, as Activation
    layers, inside a Dense and a Conv2D, plus MobileNetV3's scalar keras.ops:
    each becomes a chain of TF.js layers (inputs reach past every clip point)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(23)
    inputs = keras.Input((6, 6, 2))
    x = layers.Conv2D(4, 3, padding="same", activation="hard_sigmoid", name="conv_hard_sigmoid")(inputs)
    x = layers.Activation("hard_silu", name="act_hard_silu")(x * 4.0 - 1.0)
    x = layers.Activation("hard_tanh", name="act_hard_tanh")(3.0 - x)
    x = layers.Activation("leaky_relu", name="act_leaky_relu")(x / 4.0 + 0.5)
    x = layers.Activation("hard_swish", name="act_hard_swish")(2.0 * layers.Flatten()(x))
    outputs = layers.Dense(5, activation="hard_silu", name="dense_hard_silu")(x)
    model = keras.Model(inputs, outputs)
    perturb(model, 23)
    return Case(model, [np.random.default_rng(23).uniform(-6, 6, (3, 6, 6, 2)).astype(np.float32)])


def hard_activations_sequential() -> Case:
    """The single-branch rewrites also fit a Sequential model."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(24)
    model = keras.Sequential(
        [keras.Input((7,)), layers.Dense(6, activation="hard_sigmoid"), layers.Activation("hard_tanh"),
         layers.Dense(4, activation="leaky_relu")],
    )  # fmt: skip
    perturb(model, 24)
    return Case(model, [np.random.default_rng(24).uniform(-8, 8, (4, 7)).astype(np.float32)])


def convnext_parts() -> Case:
    """What EfficientNetV2 and ConvNeXt are made of that TF.js lacks: a Normalization
    with fixed statistics, a Conv2D with one group per channel, LayerScale
    (keras.applications' own class), and keras.ops merges of two tensors."""
    import keras
    from keras import layers
    from keras.src.applications.convnext import LayerScale

    keras.utils.set_random_seed(25)
    inputs = keras.Input((8, 8, 3))
    x = layers.Normalization(mean=[0.1, -0.2, 0.3], variance=[0.5, 2.0, 1.5], name="fixed_norm")(inputs)
    x = layers.Conv2D(6, 1, name="widen")(x)
    y = layers.Conv2D(12, 3, padding="same", groups=6, name="grouped_depthwise")(x)
    y = layers.Conv2D(6, 1, name="narrow")(y)
    y = LayerScale(0.5, 6, name="layer_scale")(y)
    x = keras.ops.maximum(x + y, x * y)
    outputs = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, outputs)
    perturb(model, 25)
    for variable in model.weights:
        if variable.path.endswith("layer_scale/variable"):
            variable.assign(np.linspace(-1.5, 1.5, 6).astype(np.float32))
    return Case(model, [floats(np.random.default_rng(25), 3, 8, 8, 3)])

"""Rewriting Keras 3 layer configs into the Keras 2 dialect tfjs-layers reads.

Per-layer rewrites (activations, initialisers, shapes tfjs computes
differently), the inbound nodes of a functional model, and the masks Keras 3
spells out that tfjs-layers derives itself: models whose masks TF.js would
apply differently from Keras are refused.
"""

from __future__ import annotations

import copy

import numpy as np

from converter.errors import ConversionError, NotExpressible
from converter.keras_config import CODE_MESSAGE

MODELS = frozenset({"Functional", "Sequential", "Model"})
RECURRENT = frozenset({"SimpleRNN", "LSTM", "GRU"})
WRAPPERS = frozenset({"Bidirectional", "TimeDistributed"})
GLOBAL_POOLING = frozenset(
    {"GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D"}
)

# Layers that return their input unchanged at inference (data augmentation):
# tfjs lacks them, so they become a linear Activation that keeps the name.
INFERENCE_IDENTITY = frozenset(
    "Identity RandomFlip RandomRotation RandomZoom RandomTranslation RandomContrast RandomBrightness "
    "RandomSaturation RandomHue RandomGrayscale RandomInvert RandomPosterization RandomSharpness RandomShear "
    "RandomErasing RandomGaussianBlur RandomElasticTransform RandomPerspective RandomColorDegeneration "
    "RandomColorJitter AugMix RandAugment CutMix MixUp Solarization".split()
)

# Keras 3 activation -> tfjs-layers activation. Keras 3's hard_sigmoid is
# relu6(x + 3) / 6, not tfjs' 0.2 * x + 0.5, so it is deliberately absent.
ACTIVATIONS = {name: name for name in "linear relu relu6 elu selu sigmoid tanh softmax softplus softsign mish".split()}
ACTIVATIONS.update({"swish": "swish", "silu": "swish", "gelu": "gelu", "log_softmax": "log_softmax"})
INITIALIZERS = {
    name: name
    for name in "Zeros Ones Constant RandomUniform RandomNormal TruncatedNormal Identity VarianceScaling "
    "GlorotUniform GlorotNormal HeNormal HeUniform Orthogonal".split()
}
INITIALIZERS.update({"LecunNormal": "LeCunNormal", "LecunUniform": "LeCunUniform"})
CONSTRAINTS = frozenset({"MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"})
# Layers whose output shape is their input shape.
SHAPE_PRESERVING = INFERENCE_IDENTITY | frozenset(
    "Activation Dropout SpatialDropout1D AlphaDropout GaussianDropout GaussianNoise BatchNormalization "
    "LayerNormalization ReLU LeakyReLU ELU PReLU Softmax Rescaling Masking".split()
)
# Masks (from Masking or Embedding(mask_zero=True)) flow through these layers
# in both Keras 3 and tfjs-layers; recurrent layers consume them.
MASK_PASS = frozenset(
    "Dense Activation Dropout SpatialDropout1D ReLU PReLU AlphaDropout GaussianDropout GaussianNoise "
    "BatchNormalization LayerNormalization TimeDistributed Concatenate Add Multiply Average Maximum Minimum".split()
)
MASK_RNN = RECURRENT | {"Bidirectional"}
# Keras and tfjs treat a mask differently in these (or Modelport cannot tell).
MASK_DIFFERS = (INFERENCE_IDENTITY - {"Identity"}) | MODELS | {"ELU", "LeakyReLU", "Softmax", "Rescaling", "Dot"}
MASK_DIFFERS |= {"GlobalAveragePooling1D"}
# Keras 3 passes `mask=` explicitly to these when their input is masked.
KERAS_MASK_ARG = MASK_RNN | {"Softmax", "GlobalAveragePooling1D", "BatchNormalization", "TimeDistributed"}
MASK_OPS = frozenset(
    {"NotEqual", "Equal", "Any", "All", "LogicalAnd", "LogicalOr", "LogicalNot", "Cast", "ExpandDims", "Squeeze"}
)
# Keras 3 activations TF.js lacks or computes differently, rewritten as exact
# chains of TF.js layers (see activation_chain).
ACTIVATION_CHAINS = frozenset({"hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "leaky_relu"})
# Layers that apply their activation to their output, once: the activation can
# follow them as layers of its own (a recurrent layer applies it inside its loop).
OUTPUT_ACTIVATION = frozenset(
    "Dense Conv1D Conv2D Conv3D Conv1DTranspose Conv2DTranspose Conv3DTranspose DepthwiseConv2D "
    "SeparableConv1D SeparableConv2D".split()
)
# A layer of a rewritten chain that also takes the chain's input (hard_silu's x * hard_sigmoid(x)).
WITH_INPUT = "__with_input__"
# keras.ops applied to a tensor and a number, as (scale, offset) of a TF.js Rescaling.
SCALAR_OPS = {
    "Add": lambda c, first: (1.0, c),
    "Subtract": lambda c, first: (1.0, -c) if first else (-1.0, c),
    "Multiply": lambda c, first: (c, 0.0),
    "Divide": lambda c, first: (1.0 / c, 0.0) if first and c else None,
    "TrueDivide": lambda c, first: (1.0 / c, 0.0) if first and c else None,
}
MERGE_OPS = frozenset({"Add", "Multiply", "Maximum", "Minimum"})
NO_SHAPE = "the file does not record it (Sequential models saved as .h5 keep almost no shapes; save as .keras)."


# --- Telling layers from code and ops ---------------------------------------------------


def _is_builtin(item: dict) -> bool:
    module = item.get("module")
    builtin_module = module is None or module == "keras" or str(module).startswith("keras.")
    # Legacy .h5 configs name a registered custom class "package>Class".
    registered = item.get("registered_name")
    return builtin_module and registered in (None, item.get("class_name")) and ">" not in str(item.get("class_name"))


def _is_op(layer: dict) -> bool:
    """A keras.ops call recorded in a functional graph (not a layer)."""
    if "module" in layer:
        return str(layer["module"]).startswith("keras.src.ops")
    # Legacy .h5 configs drop "module"; these ops are what Keras' automatic masks use.
    return layer.get("class_name") in MASK_OPS


# --- Masks ------------------------------------------------------------------------------


def _mask_ops(config: dict) -> set[str]:
    """keras.ops nodes that only compute masks for `mask=` arguments.

    A Keras 3 functional config spells out the masks that Masking or
    Embedding(mask_zero=True) imply (not_equal, any...) and passes them to the
    next layers explicitly; tfjs-layers derives the same masks itself.
    """
    layers = config["layers"]
    ops = {layer["config"].get("name") for layer in layers if isinstance(layer, dict) and _is_op(layer)}
    data_uses: list[tuple[str, str]] = []  # (consumer, producer) for every non-mask input
    for layer in layers:
        for node in layer.get("inbound_nodes") or []:
            if not isinstance(node, dict):
                continue
            kwargs = {k: v for k, v in (node.get("kwargs") or {}).items() if k != "mask"}
            for tensor in _tensors([node.get("args"), kwargs]):
                data_uses.append((layer["config"].get("name"), tensor["config"]["keras_history"][0]))
    outputs = {item[0] for item in _flat_endpoints(config.get("output_layers"))}
    mask_only = ops - outputs
    changed = True
    while changed:
        users = {producer for consumer, producer in data_uses if consumer not in mask_only}
        changed = bool(mask_only & users)
        mask_only -= users
    return mask_only


def _audit_masks(config: dict, sequential: bool, mask_ops: set, nested: bool) -> None:
    """Refuse models whose masks TF.js 4.22 would apply differently from Keras.

    tfjs-layers' executor keeps the last mask it saw in a kwargs object it
    reuses for every later layer, so a recurrent or softmax layer that Keras
    runs unmasked gets a stale mask in TF.js whenever the model masks anywhere.
    """
    layers = [layer for layer in config["layers"] if layer["config"].get("name") not in mask_ops]
    sources = [layer for layer in layers if _makes_mask(layer)]
    if not sources:
        return
    if nested:
        raise _mask_error(
            sources[0], "creates a mask inside a nested model; Modelport converts masks only in the outer model."
        )
    masked: dict[tuple, tuple[bool, bool]] = {}  # (layer, node) -> (output masked, only its first output)

    def carries(ref: tuple) -> bool:
        flag, first_only = masked.get(tuple(ref[:2]), (False, False))
        return flag and (ref[2] == 0 or not first_only)  # a recurrent layer's states carry no mask

    previous = None
    for layer in layers:
        name, class_name = layer["config"].get("name"), layer["class_name"]
        if sequential:
            calls = [([previous] if previous else [], False)] if class_name != "InputLayer" else []
        else:
            calls = [
                ([t["config"]["keras_history"] for t in _tensors((node.get("args") or [None])[0])],
                 any(True for _ in _tensors(node.get("kwargs", {}).get("mask"))))
                for node in layer.get("inbound_nodes") or [] if isinstance(node, dict)
            ]  # fmt: skip
        for index, (inputs, keras_mask) in enumerate(calls):
            incoming = any(carries(ref) for ref in inputs)
            if not sequential and class_name in KERAS_MASK_ARG and keras_mask != incoming:
                raise _mask_error(layer, "is masked differently than Modelport expects; it cannot be converted safely.")
            if incoming and class_name in MASK_DIFFERS:
                raise _mask_error(layer, "receives a mask, which TF.js would apply differently from Keras.")
            if not incoming and class_name in MASK_RNN | {"Softmax"}:
                raise _mask_error(
                    layer,
                    "runs without a mask while another layer of the model masks; TF.js 4.22 would hand it that "
                    "stale mask (a TF.js bug), so its results would differ.",
                )
            out = _makes_mask(layer) or (incoming and class_name in MASK_PASS)
            out = out or (incoming and class_name in MASK_RNN and _returns_sequences(layer))
            masked[(name, index)] = (out, class_name in MASK_RNN)
            previous = (name, index, 0)


def _makes_mask(layer: dict) -> bool:
    config = layer["config"]
    return layer["class_name"] == "Masking" or (layer["class_name"] == "Embedding" and bool(config.get("mask_zero")))


def _returns_sequences(layer: dict) -> bool:
    config = layer["config"]
    inner = config.get("layer") if layer["class_name"] == "Bidirectional" else None
    return bool((inner or {}).get("config", config).get("return_sequences"))


def _mask_error(layer: dict, what: str) -> ConversionError:
    return _unsupported(layer["config"].get("name"), layer["class_name"], what)


def _tensors(value):
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            yield value
        else:
            for item in value.values():
                yield from _tensors(item)
    elif isinstance(value, list):
        for item in value:
            yield from _tensors(item)


def _unsupported(name: str, class_name: str, what: str) -> NotExpressible:
    return NotExpressible(f"Layer '{name}' ({class_name}) {what}")


# --- Config: Keras 3 dialect -> the Keras 2 dialect tfjs-layers reads -------------------


def _mirrors(forward: dict, backward: dict) -> bool:
    """Whether `backward` is the forward layer run backwards, the only form tfjs builds."""

    def essence(layer: dict) -> dict:
        config = _clean(layer.get("config") or {}, "", str(layer.get("class_name")))
        return {key: value for key, value in config.items() if key not in ("name", "go_backwards")}

    return (
        forward.get("class_name") == backward.get("class_name")
        and essence(forward) == essence(backward)
        and bool(forward["config"].get("go_backwards")) != bool(backward.get("config", {}).get("go_backwards"))
    )


def _sequential_shapes(config: dict) -> dict[str, tuple]:
    """(input, output) shape of each layer of a Sequential, as far as the file tells.

    Keras records build shapes only for layers with weights; a layer's output is
    the next one's input, and shape-preserving layers pass shapes both ways.
    """
    layers = [layer for layer in config["layers"] if layer["class_name"] != "InputLayer"]
    inputs = [layer for layer in config["layers"] if layer["class_name"] == "InputLayer"]
    ins = [_build_shape(layer) for layer in layers]
    outs: list[list | None] = [None] * len(layers)
    if layers and ins[0] is None:
        first = inputs[0]["config"].get("batch_shape") if inputs else config.get("build_input_shape")
        ins[0] = list(first) if isinstance(first, list) else None
    changed = True
    while changed:
        changed = False
        for i, layer in enumerate(layers):
            if i + 1 < len(layers) and (outs[i] is None) != (ins[i + 1] is None):
                outs[i] = ins[i + 1] = outs[i] or ins[i + 1]
                changed = True
            if layer["class_name"] in SHAPE_PRESERVING and (ins[i] is None) != (outs[i] is None):
                ins[i] = outs[i] = ins[i] or outs[i]
                changed = True
    return {layer["config"].get("name"): (ins[i], outs[i]) for i, layer in enumerate(layers)}


def _build_shape(layer: dict) -> list | None:
    shape = (layer.get("build_config") or {}).get("input_shape")
    return shape if isinstance(shape, list) else None


def _input_shape(layer: dict) -> list | None:
    """The input shape Keras recorded: its build shape, or the shape of its first input tensor."""
    shape = _build_shape(layer)
    for node in layer.get("inbound_nodes") or []:
        args = node.get("args") if isinstance(node, dict) else None
        if shape is None and args and isinstance(args[0], dict):
            shape = args[0].get("config", {}).get("shape")
    return shape if isinstance(shape, list) else None


def _keepdims_pooling(class_name: str, config: dict, shape: list | None) -> list[dict]:
    """tfjs global pooling has no keepdims: pool, then a Reshape that keeps the layer's name.
    `shape` is the input or output shape: both hold the channel count in the same place."""
    name = config["name"]
    rank = 2 if class_name.endswith("2D") else 1
    channels_first = config.get("data_format") == "channels_first"
    channels = None
    if shape and len(shape) == rank + 2:
        channels = shape[1] if channels_first else shape[-1]
    if not isinstance(channels, int):
        raise _unsupported(name, class_name, f"uses keepdims=True, which needs its input shape; {NO_SHAPE}")
    target = [channels] + [1] * rank if channels_first else [1] * rank + [channels]
    pool = dict(config, name=f"{name}__pool")
    reshape = {"name": name, "trainable": config.get("trainable", True), "dtype": "float32", "target_shape": target}
    return [{"class_name": class_name, "config": pool}, {"class_name": "Reshape", "config": reshape}]


def _causal_conv1d(config: dict, input_shape: list | None) -> list[dict]:
    """tfjs computes a causal Conv1D's static output length as if unpadded, which breaks
    layers sized from it (Flatten, PReLU...). With a known length, pad explicitly:
    (steps, C) -> (steps, 1, C), pad the front, back to (steps + pad, C), valid conv."""
    steps, channels = (input_shape[1], input_shape[2]) if input_shape and len(input_shape) == 3 else (None, None)
    if not isinstance(steps, int) or not isinstance(channels, int):
        return [{"class_name": "Conv1D", "config": config}]  # unknown length: tfjs' static shape is unknown too
    name = config["name"]
    pad = (_first(config["kernel_size"]) - 1) * _first(config.get("dilation_rate", 1))
    common = {"trainable": config.get("trainable", True), "dtype": "float32"}
    return [
        {"class_name": "Reshape", "config": {"name": f"{name}__to_2d", "target_shape": [steps, 1, channels], **common}},
        {
            "class_name": "ZeroPadding2D",
            "config": {"name": f"{name}__causal_pad", "padding": [[pad, 0], [0, 0]], **common},
        },
        {
            "class_name": "Reshape",
            "config": {"name": f"{name}__to_1d", "target_shape": [steps + pad, channels], **common},
        },
        {"class_name": "Conv1D", "config": dict(config, padding="valid")},
    ]


def activation_chain(activation: str, name: str, trainable) -> list[dict]:
    """TF.js layers computing a Keras 3 activation TF.js has no namesake for; the
    first takes the input, the last is named `name`.

    hard_sigmoid is relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1) (TF.js' hardSigmoid
    has slope 0.2), hard_silu is x * hard_sigmoid(x), hard_tanh clip(x, -1, 1).
    """
    common = {"trainable": trainable, "dtype": "float32"}

    def layer(class_name: str, layer_name: str, **config) -> dict:
        return {"class_name": class_name, "config": {"name": layer_name, **common, **config}}

    def clip01(scale: float, offset: float, last: str) -> list[dict]:
        return [
            layer("Rescaling", f"{name}__scale", scale=scale, offset=offset),
            layer("ReLU", last, max_value=1.0),
        ]

    if activation == "hard_sigmoid":
        return clip01(1 / 6, 0.5, name)
    if activation in ("hard_silu", "hard_swish"):
        return [*clip01(1 / 6, 0.5, f"{name}__hard_sigmoid"), {**layer("Multiply", name), WITH_INPUT: True}]
    if activation == "hard_tanh":
        return [*clip01(0.5, 0.5, f"{name}__clip"), layer("Rescaling", name, scale=2.0, offset=-1.0)]
    if activation == "leaky_relu":  # keras.activations.leaky_relu's default slope
        return [layer("LeakyReLU", name, alpha=0.2)]
    raise ValueError(activation)


def elementwise_op(layer: dict, nested: set) -> dict | None:
    """A keras.ops Add/Subtract/Multiply/Divide of one tensor and one number (as
    MobileNetV3 writes `relu6(x + 3) * (1 / 6)`) as a TF.js Rescaling, or of two
    tensors as a merge layer (see _merge_op); None for anything else."""
    node = (layer.get("inbound_nodes") or [None])[0]
    rule = SCALAR_OPS.get(layer.get("class_name"))
    if len(layer.get("inbound_nodes") or []) != 1 or not isinstance(node, dict) or node.get("kwargs"):
        return None
    args = node.get("args") or []
    if len(args) != 2:
        return None
    name = layer["config"].get("name")
    if all(isinstance(arg, dict) for arg in args):
        return _merge_op(layer["class_name"], name, args, nested)
    first = isinstance(args[0], dict)
    tensor, number = args if first else args[::-1]
    if rule is None or not isinstance(tensor, dict) or isinstance(number, bool) or not isinstance(number, int | float):
        return None
    affine = rule(float(number), first)
    if affine is None or not all(np.isfinite(affine)):
        return None
    config = {"name": name, "trainable": True, "dtype": "float32", "scale": affine[0], "offset": affine[1]}
    ref = _tensor_ref(tensor, nested, name)
    return {"class_name": "Rescaling", "config": config, "inbound_nodes": [[ref + [{}]]]}


def _merge_op(class_name: str, name: str, tensors: list, nested: set) -> dict | None:
    """keras.ops add/multiply/maximum/minimum of two tensors of one shape (ConvNeXt's
    `inputs + x`) as the TF.js merge layer of the same name, or None."""
    shapes = [tensor.get("config", {}).get("shape") for tensor in tensors]
    if class_name not in MERGE_OPS or not isinstance(shapes[0], list) or shapes[0] != shapes[1]:
        return None
    refs = [_tensor_ref(tensor, nested, name) + [{}] for tensor in tensors]
    return {"class_name": class_name, "config": {"name": name, "trainable": True, "dtype": "float32"},
            "inbound_nodes": [refs]}  # fmt: skip


def _softmax(config: dict, input_shape: list | None) -> list[dict]:
    """tfjs' softmax runs only over the last axis: move another axis there and back."""
    name = config["name"]
    axis = config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    rank = len(input_shape) if input_shape else None
    if axis == -1 or (rank and axis == rank - 1):
        return [{"class_name": "Softmax", "config": dict(config, axis=-1)}]
    if not rank:
        raise _unsupported(name, "Softmax", f"normalises over axis {axis}, which needs its input shape; {NO_SHAPE}")
    if not isinstance(axis, int) or not -rank < axis < rank or axis % rank == 0:
        raise _unsupported(name, "Softmax", f"normalises over axis {axis}, which Modelport cannot convert.")
    dims = list(range(1, rank))
    dims[axis % rank - 1], dims[-1] = dims[-1], dims[axis % rank - 1]
    common = {"trainable": config.get("trainable", True), "dtype": "float32"}
    return [
        {"class_name": "Permute", "config": {"name": f"{name}__to_last", "dims": dims, **common}},
        {"class_name": "Softmax", "config": dict(config, name=f"{name}__last", axis=-1)},
        {"class_name": "Permute", "config": {"name": name, "dims": dims, **common}},
    ]


def _resolve_reshape(target: list, input_shape: list | None, output_shape: list | None) -> list:
    """tfjs leaves a -1 in Reshape's static output shape, which breaks the layers after it."""
    if -1 not in target:
        return target
    if output_shape and all(isinstance(d, int) for d in output_shape[1:]):
        return list(output_shape[1:])
    known = input_shape[1:] if input_shape else None
    if not known or not all(isinstance(d, int) for d in known):
        return target
    rest = int(np.prod([d for d in target if d != -1]))
    return [int(np.prod(known)) // rest if d == -1 else d for d in target]


def _first(value) -> int:
    return int(value[0] if isinstance(value, list) else value)


def _clean(config: dict, name: str, class_name: str) -> dict:
    """A copy of a layer config with Keras 3 objects (policies, initialisers…) in tfjs form."""
    out = {}
    for key, value in copy.deepcopy(config).items():
        if key == "dtype":
            out[key] = _dtype(value)
        elif key in ("activation", "recurrent_activation"):
            out[key] = _activation(value, name, class_name)
        elif key.endswith("initializer"):
            value = _initializer(value)
            if value is not None:
                out[key] = value
        elif key.endswith("regularizer"):
            out[key] = _regularizer(value)
        elif key.endswith("constraint"):
            out[key] = _simple_object(value, CONSTRAINTS)
        elif key not in ("quantization_config", "seed"):
            out[key] = value
    return out


def _dtype(value) -> str:
    if isinstance(value, dict):
        value = (value.get("config") or {}).get("name", "float32")
    value = str(value or "float32")
    if value in ("int32", "int64", "int16", "int8", "uint8", "bool"):
        return "int32"
    # Weights are float32 in the output; mixed/half-precision policies compute in float32 in TF.js.
    return "float32"


def _activation(value, name: str, class_name: str):
    if value is None:
        return "linear"
    if isinstance(value, str) and value in ACTIVATIONS:
        return ACTIVATIONS[value]
    if isinstance(value, dict):
        raise ConversionError(f"Layer '{name}' ({class_name}) uses a custom activation function, which {CODE_MESSAGE}")
    raise _unsupported(name, class_name, f"uses the activation {value!r}, which TF.js does not implement.")


def _initializer(value):
    # Initialisers only matter for retraining; an unknown one falls back to tfjs' default.
    if isinstance(value, str):
        value = {"class_name": value, "config": {}}
    if not isinstance(value, dict) or value.get("class_name") not in INITIALIZERS or not _is_builtin(value):
        return None
    config = {k: v for k, v in (value.get("config") or {}).items() if k not in ("input_axes", "output_axes")}
    if config.get("distribution") == "untruncated_normal":
        config["distribution"] = "normal"
    return {"class_name": INITIALIZERS[value["class_name"]], "config": config}


def _regularizer(value):
    """tfjs registers only L1L2; a regulariser never changes predictions, so others are dropped."""
    if not isinstance(value, dict) or not _is_builtin(value):
        return None
    config = value.get("config") or {}
    if value.get("class_name") in ("L1", "L2", "L1L2"):
        return {
            "class_name": "L1L2",
            "config": {"l1": float(config.get("l1", 0.0)), "l2": float(config.get("l2", 0.0))},
        }
    return None


def _simple_object(value, known: frozenset):
    if not isinstance(value, dict) or value.get("class_name") not in known or not _is_builtin(value):
        return None
    return {"class_name": value["class_name"], "config": dict(value.get("config") or {})}


def _inbound_node(node, nested: set, mask_ops: set, layer: dict) -> list:
    """Keras 3 `{"args": [...], "kwargs": {...}}` -> tfjs `[[layer, node, tensor, {}], ...]`."""
    name = layer["config"].get("name")
    if isinstance(node, list):  # already the Keras 2 form
        return [list(item[:3]) + [{}] for item in node]
    args = node.get("args") or []
    if not args:
        raise ConversionError(f"Layer '{name}' is called without inputs in the model config.")
    tensors = args[0] if isinstance(args[0], list) else [args[0]]
    kwargs = dict(node.get("kwargs") or {})
    masks = list(_tensors(kwargs.pop("mask", None)))
    if any(True for _ in _tensors([args[1:], kwargs])) or any(
        m["config"]["keras_history"][0] not in mask_ops for m in masks
    ):
        raise NotExpressible(
            f"Layer '{name}' is called with extra tensor arguments (such as an explicit mask or initial "
            "state), which Modelport cannot convert yet."
        )
    return [_tensor_ref(tensor, nested, name) + [{}] for tensor in tensors]


def _tensor_ref(tensor, nested: set, name: str) -> list:
    history = tensor.get("config", {}).get("keras_history") if isinstance(tensor, dict) else None
    if not isinstance(history, list) or len(history) != 3:
        raise ConversionError(f"Layer '{name}' takes an input that is not a tensor of the model.")
    layer, node, index = history
    # A tfjs model creates node 0 itself when it is built, so calls of a nested model start at 1.
    return [layer, node + 1 if layer in nested else node, index]


def _flat_endpoints(value) -> list:
    if isinstance(value, dict):
        value = [value[key] for key in sorted(value)]
    if not isinstance(value, list) or not value:
        raise ConversionError("The model config does not list its inputs and outputs.")
    return [value] if isinstance(value[0], str) else value


def _endpoints(value, nested: set) -> list:
    """input_layers/output_layers: a single flat [name, node, tensor] becomes a list of them."""
    return [[layer, node + 1 if layer in nested else node, index] for layer, node, index in _flat_endpoints(value)]

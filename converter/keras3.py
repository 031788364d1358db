"""Turn a Keras 3 model (.keras, or .h5 written by Keras 3) into a TF.js layers model.

tensorflowjs 4.22 writes model.json files for Keras 3 models that
@tensorflow/tfjs 4.22 refuses to load, or loads wrongly. This module rewrites
the Keras 3 architecture JSON into the Keras 2 dialect tfjs-layers reads
(per-layer rewrites in keras3_config) and gives each weight array the name
tfjs-layers gives the matching variable (keras3_weights).

The upload is an untrusted program: nothing here deserialises it with Keras.
Only the JSON config and the weight arrays are read (zipfile, h5py), and every
layer must be a built-in Keras class that TF.js implements.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from converter.errors import ConversionError, NotExpressible
from converter.keras3_config import (
    ACTIVATION_CHAINS,
    GLOBAL_POOLING,
    INFERENCE_IDENTITY,
    MODELS,
    OUTPUT_ACTIVATION,
    RECURRENT,
    WITH_INPUT,
    WRAPPERS,
    _audit_masks,
    _causal_conv1d,
    _clean,
    _endpoints,
    _inbound_node,
    _input_shape,
    _is_builtin,
    _is_op,
    _keepdims_pooling,
    _mask_ops,
    _mirrors,
    _resolve_reshape,
    _sequential_shapes,
    _softmax,
    _unsupported,
    activation_chain,
    elementwise_op,
)
from converter.keras3_weights import (
    OWN_VARIABLES,
    _forward_base,
    _join,
    _read_h5_config,
    _read_keras_archive,
    _read_keras_weights,
    _read_legacy_weights,
    _WeightRequests,
)
from converter.keras_config import CODE_LAYERS, CODE_MESSAGE, check_keys, check_no_code, walk_layers

# Layer classes registered in @tensorflow/tfjs-layers 4.22 (its serialization map).
TFJS_LAYERS = frozenset(
    "Activation Add AlphaDropout Average AveragePooling1D AveragePooling2D AveragePooling3D "
    "BatchNormalization Bidirectional CategoryEncoding CenterCrop Concatenate Conv1D Conv2D "
    "Conv2DTranspose Conv3D Conv3DTranspose ConvLSTM2D Cropping2D Dense DepthwiseConv2D Dot Dropout "
    "ELU Embedding Flatten Functional GRU GaussianDropout GaussianNoise GlobalAveragePooling1D "
    "GlobalAveragePooling2D GlobalMaxPooling1D GlobalMaxPooling2D InputLayer LSTM LayerNormalization "
    "LeakyReLU Masking MaxPooling1D MaxPooling2D MaxPooling3D Maximum Minimum Model Multiply PReLU "
    "Permute RNN RandomWidth ReLU RepeatVector Rescaling Reshape Resizing SeparableConv2D Sequential "
    "SimpleRNN Softmax SpatialDropout1D TimeDistributed UpSampling2D ZeroPadding2D "
    "LSTMCell GRUCell SimpleRNNCell StackedRNNCells".split()
)
# Layers without variables whose Keras 3 config tfjs-layers reads correctly
# once the generic clean-up (keras3_config._clean) has run (each one is exercised by a test).
WEIGHTLESS = GLOBAL_POOLING | frozenset(
    "InputLayer Activation Add Average Maximum Minimum Multiply Concatenate Dot Dropout AlphaDropout "
    "GaussianDropout GaussianNoise SpatialDropout1D Flatten Reshape Permute RepeatVector Masking "
    "ZeroPadding2D Cropping2D UpSampling2D ReLU LeakyReLU ELU Softmax Rescaling "
    "MaxPooling1D MaxPooling2D MaxPooling3D AveragePooling1D AveragePooling2D AveragePooling3D".split()
)
# Keras layers TF.js lacks that become an exact TF.js equivalent.
REWRITTEN = frozenset({"Normalization", "LayerScale"})
SUPPORTED = WEIGHTLESS | RECURRENT | WRAPPERS | MODELS | frozenset(OWN_VARIABLES) | INFERENCE_IDENTITY | REWRITTEN


def convert_keras3(source: Path, output_dir: Path, shard_bytes: int) -> None:
    """Convert a Keras 3 `.keras` archive or Keras-3 `.h5` into model.json + weight shards."""
    from tensorflowjs.converters.keras_h5_conversion import write_artifacts

    topology, weights = normalise(Path(source))
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    write_artifacts(topology, [weights], str(output_dir), weight_shard_size_bytes=shard_bytes)


def normalise(source: Path) -> tuple[dict, list[dict]]:
    """(tfjs model topology, [{"name", "data"}, ...]) for a Keras 3 model file."""
    import h5py

    try:
        if zipfile.is_zipfile(source):
            config, version, weights_file = _read_keras_archive(source)
            with weights_file, h5py.File(weights_file, "r") as h5:
                walker = _Walker()
                model_config = walker.model(_check_top(config), "", "", True)
                weights = _read_keras_weights(h5, walker)
        else:
            try:
                h5 = h5py.File(source, "r")
            except OSError:
                raise ConversionError("The file is neither a .keras archive nor an HDF5 model file.") from None
            with h5:
                config, version = _read_h5_config(h5)
                walker = _Walker()
                model_config = walker.model(_check_top(config), "", "", True)
                weights = _read_legacy_weights(h5["model_weights"], walker.requests)
    except NotExpressible:
        # The walk stopped half-way; the graph route will have Keras build this
        # model, so every safety check runs on the whole config first.
        check_safe(config)
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ConversionError(f"The model file does not hold a Keras 3 model Modelport can read ({exc!r}).") from None
    # After the layer-by-layer checks (their messages are more precise), before anything builds the model.
    check_no_code(config)
    check_keys(config, _layer_class)
    for weight in weights + walker.constants:
        if weight["name"] in walker.normalizations and float(weight["data"].min(initial=1.0)) < 1e-14:
            raise NotExpressible(
                f"Layer '{weight['name'].split('/')[0]}' (Normalization) has a zero variance, which Keras divides by "
                "1e-7 instead; a TF.js BatchNormalization cannot do that."
            )
    # tfjs matches weights by name; list them as its model.weights does (trainable first).
    kept = [index for index, weight in enumerate(weights) if weight["name"] is not None]
    weights = [weights[index] for index in kept]
    flags = [walker.requests[index].trainable for index in kept]
    weights = [w for w, t in zip(weights, flags, strict=True) if t] + [
        w for w, t in zip(weights, flags, strict=True) if not t
    ]
    weights += walker.constants  # non-trainable, like the statistics they stand beside
    names = [weight["name"] for weight in weights]
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})[0].split("/")[0]
        raise NotExpressible(
            f"Two layers (in different nested models) are both named '{twice}'; TF.js matches weights by layer "
            "name, so rename one of them."
        )
    return {"keras_version": version, "backend": "tensorflow", "model_config": model_config}, weights


# --- Checking what the model is made of ------------------------------------------------


def _normalization_as_batch_norm(name: str, config: dict) -> dict:
    """Keras' Normalization is (x - mean) / max(sqrt(variance), 1e-7): a
    BatchNormalization without scale and offset, epsilon 0, whose moving
    statistics are the adapted mean and variance (zero variances refused)."""
    batch_norm = {
        "name": name,
        "trainable": False,
        "dtype": config.get("dtype", "float32"),
        "axis": _single_axis(config.get("axis", -1)),
        "epsilon": 0.0,
        "momentum": 0.99,
        "center": False,
        "scale": False,
    }
    return {"class_name": "BatchNormalization", "config": batch_norm}


def _single_axis(axis) -> int | None:
    if isinstance(axis, list | tuple) and len(axis) == 1:
        axis = axis[0]
    return axis if isinstance(axis, int) and not isinstance(axis, bool) else None


def _layer_class(layer: dict) -> type | None:
    import keras

    if _is_op(layer):
        return None  # a keras.ops call, not the layer of the same name
    found = getattr(keras.layers, layer["class_name"], None)
    return found if isinstance(found, type) else None


def _check_top(config: dict) -> dict:
    class_name = config.get("class_name")
    if class_name not in MODELS or not _is_builtin(config):
        raise ConversionError(
            f"The model is a {class_name!r} ({config.get('registered_name') or config.get('module')}): only "
            "Sequential and functional Keras models can be converted; a subclassed model is Python code."
        )
    layers = (config.get("config") or {}).get("layers")
    if not isinstance(layers, list) or not layers:
        raise ConversionError("The model config has no layers.")
    return config


def check_safe_layer(layer: dict) -> None:
    """Refuse a layer whose class is code: a code-bearing layer or a custom class."""
    if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
        raise ConversionError("The model config holds a layer entry that is not an object.")
    class_name = str(layer.get("class_name", "?"))
    name = layer["config"].get("name", "?")
    if class_name in CODE_LAYERS:
        raise ConversionError(f"Layer '{name}' ({class_name}) {CODE_MESSAGE}")
    if not _is_builtin(layer):
        short = class_name.split(">")[-1]
        origin = layer.get("registered_name") or (class_name if ">" in class_name else f"{layer.get('module')}.{short}")
        raise ConversionError(
            f"Layer '{name}' ({short}) is a custom class ({origin}); Modelport never runs code from an upload "
            "and TF.js cannot load it. Use built-in Keras layers only."
        )


def check_safe(config: dict) -> None:
    """Every check that stands between an upload and Keras building it, on
    the whole config: for models the layers route gave up on half-way."""
    _check_top(config)
    for layer in walk_layers(config["config"]["layers"]):
        check_safe_layer(layer)
    check_no_code(config)
    check_keys(config, _layer_class)


def check_layer(layer: dict) -> None:
    """Raise ConversionError if TF.js cannot run `layer` (one Keras 3 layer config)."""
    check_safe_layer(layer)
    check_expressible(layer)


def check_expressible(layer: dict) -> None:
    """Raise NotExpressible if TF.js layers have no equivalent of `layer` (already checked safe)."""
    class_name = str(layer.get("class_name", "?"))
    name = layer["config"].get("name", "?")
    if _is_op(layer):
        raise NotExpressible(
            f"Layer '{name}' ({class_name}) is a keras.ops function applied directly in the model; a TF.js "
            "layers model can only hold layers. Use the equivalent keras.layers layer."
        )
    if class_name not in TFJS_LAYERS | INFERENCE_IDENTITY | REWRITTEN:
        raise NotExpressible(
            f"Layer '{name}' ({class_name}) has no TF.js equivalent: TF.js 4.22 does not implement it."
        )
    if class_name not in SUPPORTED:
        raise NotExpressible(
            f"Layer '{name}' ({class_name}) exists in TF.js, but Modelport cannot convert it from Keras 3 yet."
        )


def _check_options(class_name: str, name: str, config: dict) -> None:
    """Options TF.js does not implement (or implements differently) for an otherwise known layer."""
    if class_name == "GRU" and config.get("reset_after", True):
        raise _unsupported(
            name, class_name, "uses reset_after=True (the Keras 3 default), which TF.js' GRU layer does not implement."
        )
    if config.get("groups", 1) != 1:
        raise _unsupported(name, class_name, "is a grouped convolution (groups > 1), which TF.js does not implement.")
    if class_name == "Conv2DTranspose" and config.get("output_padding") is not None:
        raise _unsupported(name, class_name, "sets output_padding, which TF.js does not implement.")
    if class_name == "LayerNormalization" and config.get("rms_scaling"):
        raise _unsupported(name, class_name, "uses rms_scaling, which TF.js does not implement.")
    if class_name == "BatchNormalization" and config.get("renorm"):
        raise _unsupported(name, class_name, "uses batch renormalization, which TF.js does not implement.")
    if class_name == "ReLU" and (config.get("negative_slope") or config.get("threshold")):
        raise _unsupported(name, class_name, "sets negative_slope or threshold, which TF.js' ReLU does not implement.")
    if class_name == "UpSampling2D" and config.get("interpolation", "nearest") != "nearest":
        raise _unsupported(name, class_name, "uses non-nearest interpolation, which TF.js computes differently.")
    if class_name == "ELU" and config.get("alpha", 1.0) != 1.0:
        raise _unsupported(
            name, class_name, "sets alpha to a value other than 1.0, which TF.js' ELU layer does not implement."
        )
    if class_name == "InputLayer" and (config.get("sparse") or config.get("ragged")):
        raise _unsupported(name, class_name, "takes sparse or ragged tensors, which TF.js does not support.")
    if class_name == "Normalization" and (config.get("invert") or _single_axis(config.get("axis", -1)) is None):
        raise _unsupported(
            name,
            class_name,
            "is inverted or normalises over several axes; TF.js has no Normalization "
            "layer and Modelport rewrites only the one-axis kind.",
        )
    if config.get("quantization_config"):
        raise _unsupported(name, class_name, "is quantized, which TF.js layers cannot load.")
    policy = config.get("dtype")
    policy_name = policy.get("config", {}).get("name", "") if isinstance(policy, dict) else str(policy or "")
    if (isinstance(policy, dict) and "Quantized" in str(policy.get("class_name"))) or policy_name.startswith(
        ("int8", "int4", "float8", "gptq")
    ):
        raise _unsupported(name, class_name, f"is quantized ({policy_name}), which TF.js layers cannot load.")


def _grouped_as_depthwise(layer: dict, input_shape: list | None) -> dict | None:
    """A Conv2D with one group per input channel (ConvNeXt's depthwise convolutions)
    is a DepthwiseConv2D, which TF.js has: that layer, or None for any other layer."""
    config = layer["config"]
    groups = config.get("groups", 1)
    if layer["class_name"] != "Conv2D" or groups == 1 or config.get("data_format", "channels_last") != "channels_last":
        return None
    channels = input_shape[-1] if input_shape and len(input_shape) == 4 else None
    filters, kernel_size = config.get("filters"), config.get("kernel_size")
    if not isinstance(channels, int) or channels != groups or not isinstance(filters, int) or filters % groups:
        return None
    if not (isinstance(kernel_size, list) and len(kernel_size) == 2 and all(isinstance(k, int) for k in kernel_size)):
        return None
    keep = "name trainable dtype kernel_size strides padding data_format dilation_rate activation use_bias".split()
    depthwise = {key: config[key] for key in keep if key in config}
    depthwise["depth_multiplier"] = filters // groups
    return {**layer, "class_name": "DepthwiseConv2D", "config": depthwise}


def _chain_input(chain_input, node: list, index: int) -> list:
    """The extra inbound tensor of a rewritten chain's layer (see keras3_config.WITH_INPUT)."""
    if chain_input is True:
        return list(node)
    return [[chain_input, index, 0, {}]] if chain_input else []


# --- Config: Keras 3 dialect -> the Keras 2 dialect tfjs-layers reads -------------------


class _Walker(_WeightRequests):
    """Converts the config depth-first and lists the weights tfjs will ask for, in order."""

    def model(self, model: dict, path: str, top: str, trainable: bool) -> dict:
        """`path`: the model's group in a .keras weights file; `top`: its top-level ancestor."""
        sequential = model["class_name"] == "Sequential"
        config = model["config"]
        trainable = trainable and config.get("trainable", True) is not False
        nested = {layer["config"].get("name") for layer in config["layers"] if layer.get("class_name") in MODELS}
        mask_ops = set() if sequential else _mask_ops(config)
        used: dict[str, int] = {}
        layers: list[dict] = []
        shapes = _sequential_shapes(config) if sequential else {}
        for layer in config["layers"]:
            if layer["config"].get("name") in mask_ops:
                continue
            check_safe_layer(layer)
            # Legacy .h5 configs drop "module": an op is then told from a layer by its (tensor, number) call.
            maybe_op = _is_op(layer) or "module" not in layer
            as_layer = elementwise_op(layer, nested) if maybe_op and not sequential else None
            if as_layer is not None:  # an op, not a layer: no weights group
                as_layer["name"] = as_layer["config"]["name"]
                layers.append(as_layer)
                continue
            check_expressible(layer)
            name = layer["config"].get("name")
            class_name = layer["class_name"]
            # Sequential.layers (what .keras files walk) leaves out the InputLayer.
            group = "" if sequential and class_name == "InputLayer" else self._group(path, class_name, used)
            if group:
                self.layer_groups[_join(group, "vars")] = name
            if class_name in MODELS:
                converted = [self.model(layer, group, top or name, trainable)]
                converted[0]["config"]["name"] = name
            else:
                converted = self.layer(layer, group, top or name, trainable, shapes.get(name, (None, None)))
            if not sequential:
                nodes = [_inbound_node(node, nested, mask_ops, layer) for node in layer.get("inbound_nodes") or []]
                converted[0]["inbound_nodes"] = nodes
                for before, after in zip(converted, converted[1:], strict=False):
                    chain_input = after.pop(WITH_INPUT, False)
                    after["inbound_nodes"] = [
                        _chain_input(chain_input, nodes[i], i) + [[before["config"]["name"], i, 0, {}]]
                        for i in range(len(nodes))
                    ]
                for item in converted:
                    item["name"] = item["config"]["name"]
            elif any(item.pop(WITH_INPUT, False) for item in converted):
                raise _unsupported(
                    name,
                    class_name,
                    f"uses {layer['config'].get('activation')}, which TF.js layers can express "
                    "only in a functional model (x * hard_sigmoid(x) needs two branches), not in a Sequential one.",
                )
            layers.extend(converted)
        _audit_masks(config, sequential, mask_ops, nested=bool(top))
        if sequential:
            if layers[0]["class_name"] != "InputLayer":
                shape = config.get("build_input_shape")
                if not shape:
                    raise ConversionError(
                        f"Sequential model '{config.get('name')}' was never built: its input shape is unknown."
                    )
                layers[0]["config"]["batch_input_shape"] = list(shape)
            return {"class_name": "Sequential", "config": {"name": config.get("name"), "layers": layers}}
        return {
            "class_name": "Functional",
            "config": {
                "name": config.get("name"),
                "layers": layers,
                "input_layers": _endpoints(config.get("input_layers"), nested),
                "output_layers": _endpoints(config.get("output_layers"), nested),
            },
        }

    def layer(self, layer: dict, group: str, top: str, trainable: bool, shapes: tuple) -> list[dict]:
        """Convert one layer; a rewrite may yield several (first takes the inputs, last keeps the name).
        `shapes`: (input, output) shapes known from a Sequential's other layers."""
        class_name = layer["class_name"]
        name = layer["config"].get("name")
        activation = layer["config"].get("activation")
        splittable = class_name == "Activation" or class_name in OUTPUT_ACTIVATION
        if isinstance(activation, str) and activation in ACTIVATION_CHAINS and splittable:
            # The layer computes linearly under its name + "__linear" (its weights too), the
            # activation's layers follow, and the last keeps the name (cuts, getLayer).
            trainable_flag = layer["config"].get("trainable", True)
            chain = activation_chain(activation, name, trainable_flag)
            if class_name == "Activation":
                return chain
            linear = dict(layer, config=dict(layer["config"], name=f"{name}__linear", activation="linear"))
            for item in chain:  # the chain's input is now the linear layer's output
                if item.get(WITH_INPUT):
                    item[WITH_INPUT] = f"{name}__linear"
            return self.layer(linear, group, top, trainable, shapes) + chain
        input_shape, output_shape = _input_shape(layer) or shapes[0], shapes[1]
        depthwise = _grouped_as_depthwise(layer, input_shape)
        if depthwise is not None:
            layer, class_name = depthwise, depthwise["class_name"]
        _check_options(class_name, name, layer["config"])
        self._weights(layer, name, name, group, top, trainable)
        if depthwise is not None:  # Conv2D's (kh, kw, 1, C * m) kernel is depthwise's (kh, kw, C, m)
            kh, kw = layer["config"]["kernel_size"]
            self.requests[-1 - layer["config"].get("use_bias", True)].reshape = (
                kh, kw, input_shape[-1], layer["config"]["depth_multiplier"]
            )  # fmt: skip
        config = _clean(layer["config"], name, class_name)
        flat_already = class_name == "Flatten" and input_shape is not None and len(input_shape) == 2
        if class_name in INFERENCE_IDENTITY or flat_already:  # tfjs' Flatten refuses a (batch, n) input
            identity = {"name": name, "trainable": config.get("trainable", True), "dtype": "float32"}
            return [{"class_name": "Activation", "config": {**identity, "activation": "linear"}}]
        if class_name == "InputLayer":
            config["batch_input_shape"] = config.pop("batch_shape", config.get("batch_input_shape"))
            for key in ("sparse", "ragged", "optional"):
                config.pop(key, None)
        elif class_name == "LeakyReLU" and "negative_slope" in config:
            config["alpha"] = config.pop("negative_slope")
        elif class_name in WRAPPERS:
            config = self._wrapper(class_name, name, config, layer["config"])
        elif class_name == "Conv1D" and config.get("padding") == "causal":
            return _causal_conv1d(config, input_shape)
        elif class_name == "Softmax":
            return _softmax(config, input_shape or output_shape)
        elif class_name == "Reshape":
            config["target_shape"] = _resolve_reshape(config["target_shape"], input_shape, output_shape)
        elif class_name in GLOBAL_POOLING and config.pop("keepdims", False):
            return _keepdims_pooling(class_name, config, input_shape or output_shape)
        elif class_name == "LayerScale":
            return [self._layer_scale(name, config)]
        elif class_name == "Normalization":
            self.normalizations.add(f"{name}/moving_variance")
            if config.get("mean") is not None:
                self._fixed_statistics(name, config, input_shape or output_shape)
            return [_normalization_as_batch_norm(name, config)]
        return [{"class_name": class_name, "config": config}]

    def _layer_scale(self, name: str, config: dict) -> dict:
        """ConvNeXt's LayerScale (keras.applications' own class) is x * gamma: a
        BatchNormalization of mean 0, variance 1 and epsilon 0 computes exactly that."""
        channels = config.get("projection_dim")
        if not isinstance(channels, int) or isinstance(channels, bool) or not 0 < channels <= 1 << 20:
            raise ConversionError(f"Layer '{name}' (LayerScale) has no valid projection_dim.")
        self.constants.append({"name": f"{name}/moving_mean", "data": np.zeros(channels, np.float32)})
        self.constants.append({"name": f"{name}/moving_variance", "data": np.ones(channels, np.float32)})
        common = {"name": name, "trainable": config.get("trainable", True), "dtype": "float32"}
        batch_norm = {"axis": -1, "epsilon": 0.0, "momentum": 0.99, "center": False, "scale": True}
        return {"class_name": "BatchNormalization", "config": {**common, **batch_norm}}

    def _fixed_statistics(self, name: str, config: dict, shape: list | None) -> None:
        """A Normalization built with mean= and variance= keeps them in its config, not
        as variables: they become the BatchNormalization's moving statistics."""
        axis = _single_axis(config.get("axis", -1))
        channels = shape[axis] if shape and -len(shape) <= axis < len(shape) else None
        for keras_name, tfjs_name in (("mean", "moving_mean"), ("variance", "moving_variance")):
            try:
                value = np.asarray(config.get(keras_name), dtype=np.float32).reshape(-1)
            except (TypeError, ValueError):
                raise ConversionError(
                    f"Layer '{name}' (Normalization) has a {keras_name} that is not numbers."
                ) from None
            if value.size == 1 and isinstance(channels, int):
                value = np.full(channels, value[0], np.float32)
            if value.size == 0 or (isinstance(channels, int) and value.size != channels):
                raise _unsupported(name, "Normalization", f"has a {keras_name} that does not match its input's axis.")
            self.constants.append({"name": f"{name}/{tfjs_name}", "data": value})

    def _wrapper(self, class_name: str, name: str, config: dict, raw: dict) -> dict:
        inner = raw.get("layer")
        if not isinstance(inner, dict):
            raise _unsupported(name, class_name, "has no wrapped layer.")
        check_layer(inner)
        _check_options(inner["class_name"], inner["config"].get("name"), inner["config"])
        if class_name == "Bidirectional":
            if inner["class_name"] not in RECURRENT:
                raise _unsupported(
                    name, class_name, f"wraps a {inner['class_name']}; TF.js supports only SimpleRNN, LSTM and GRU."
                )
            backward = raw.get("backward_layer")
            if backward is not None and not _mirrors(inner, backward):
                raise _unsupported(
                    name, class_name, "has a custom backward_layer; TF.js always mirrors the forward layer."
                )
        elif inner["class_name"] in MODELS | WRAPPERS:
            raise _unsupported(name, class_name, f"wraps a {inner['class_name']}, which Modelport cannot convert yet.")
        inner_config = _clean(inner["config"], inner["config"].get("name"), inner["class_name"])
        if class_name == "Bidirectional":
            inner_config["name"] = _forward_base(inner)
        config["layer"] = {"class_name": inner["class_name"], "config": inner_config}
        config.pop("backward_layer", None)
        return config

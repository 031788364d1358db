"""tf-keras (Keras 2) models: the class allowlist, and .h5 files to TF.js
layers models.

Every class in the config, wherever it sits (nested models, wrappers, RNN
cells, initializers, regularizers, constraints), must be built into
tf-keras, and the config must carry no serialized code (keras_config),
before tf-keras is allowed to build the model for the parity reference.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

from converter import keras_config, parity
from converter.errors import ConversionError
from converter.formats import LAYERS_MODEL
from converter.keras3 import TFJS_LAYERS

GLOBAL_POOLING = frozenset(
    {"GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D"}
)


def check_model_classes(model_config: dict) -> None:
    """Refuse code layers, serialized functions and classes that are not
    built into tf-keras, with the name of the layer that holds them."""
    builtin = builtin_class_names()
    for obj, owner, _ in keras_config.walk_objects(model_config):
        class_name = obj.get("class_name")
        if not isinstance(class_name, str) or not isinstance(obj.get("config"), dict):
            continue
        if class_name in keras_config.CODE_LAYERS:
            raise ConversionError(f"Layer '{owner}' ({class_name}) {keras_config.CODE_MESSAGE}")
        if class_name not in builtin:
            if keras_config.layer_name(obj) is not None:
                raise ConversionError(
                    f"Layer '{owner}' is a custom class {class_name!r}; custom code is never run and TF.js "
                    "cannot load it."
                )
            raise ConversionError(
                f"Layer '{owner}' uses a custom class {class_name!r} in its configuration; custom code is "
                "never run and TF.js cannot load it."
            )
    keras_config.check_no_code(model_config)
    keras_config.check_keys(model_config, builtin_layer_class)


def builtin_layer_class(layer: dict) -> type | None:
    from tf_keras.src.layers import serialization as layer_serialization

    layer_serialization.populate_deserializable_objects()
    found = layer_serialization.LOCAL.ALL_OBJECTS.get(layer["class_name"])
    return found if isinstance(found, type) else None


@functools.cache
def builtin_class_names() -> frozenset[str]:
    from tf_keras.src import constraints, initializers, regularizers
    from tf_keras.src.layers import serialization as layer_serialization

    layer_serialization.populate_deserializable_objects()
    initializers.populate_deserializable_objects()
    names = set(layer_serialization.LOCAL.ALL_OBJECTS) | set(initializers.LOCAL.ALL_OBJECTS)
    for module, base in ((regularizers, regularizers.Regularizer), (constraints, constraints.Constraint)):
        names |= {name for name, value in vars(module).items() if isinstance(value, type) and issubclass(value, base)}
    names.add("Policy")  # mixed-precision dtype policies
    return frozenset(names - keras_config.CODE_LAYERS)


def check_tfjs_support(model_config: dict) -> None:
    keras_config.check_tfjs_layers(model_config, TFJS_LAYERS)


# tf-keras writes these for separable convolutions, but they do not apply to
# them; tfjs refuses the whole model when it sees them.
SEPARABLE_IGNORED = ("kernel_initializer", "kernel_regularizer", "kernel_constraint")


def fix_keras2_topology(output: Path) -> None:
    """Rewrite what tf-keras writes but TF.js 4.22 refuses, in model.json."""
    path = output / "model.json"
    document = json.loads(path.read_text())
    topology = document["modelTopology"]
    for layer in keras_config.walk_layers(topology.get("model_config", topology)["config"].get("layers", [])):
        if layer["class_name"] in ("SeparableConv1D", "SeparableConv2D"):
            for key in SEPARABLE_IGNORED:
                layer["config"].pop(key, None)
    path.write_text(json.dumps(document))


def read_h5_config(source: Path) -> tuple[str, dict]:
    import h5py

    with h5py.File(source, "r") as h5:
        if "model_config" not in h5.attrs:
            raise ConversionError(
                "The HDF5 file holds weights only, without the model's architecture. "
                "Save the whole model with model.save('model.h5')."
            )
        version = h5.attrs.get("keras_version", b"")
        version = version.decode() if isinstance(version, bytes) else str(version)
        raw_config = h5.attrs["model_config"]
    try:
        config = json.loads(raw_config.decode() if isinstance(raw_config, bytes) else raw_config)
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise ConversionError("The HDF5 file's model_config is not valid JSON.") from None
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ConversionError("The HDF5 file's model_config does not describe a Keras model.")
    return version, config


def convert_keras_h5(source: Path, output: Path, shard_bytes: int) -> tuple[dict, parity.Proof]:
    """Keras 2 .h5 → layers model. Every class in the config is checked to be
    a built-in tf-keras class before tf-keras builds the model (for the
    parity reference): nothing from the file is ever executed."""
    _, model_config = read_h5_config(source)
    check_model_classes(model_config)
    check_tfjs_support(model_config)
    # The reference is the model as uploaded (loaded once, cached); TF.js
    # gets a copy whose keepdims pooling it can run.
    proof = parity.keras2_proof(source)
    source = adapt_keepdims_pooling(source, model_config)

    from tensorflowjs.converters import converter

    converter.dispatch_keras_h5_to_tfjs_layers_model_conversion(
        str(source), output_dir=str(output), weight_shard_size_bytes=shard_bytes
    )
    fix_keras2_topology(output)
    return {"output_format": LAYERS_MODEL}, proof


def adapt_keepdims_pooling(source: Path, model_config: dict) -> Path:
    """TF.js has no ``keepdims`` on global pooling (MobileNet's head): write
    a copy of the .h5 whose config has pooling + Reshape instead (same
    weights, same layer names for everything else)."""
    import h5py

    layers = model_config["config"].get("layers", [])
    if not any(layer["class_name"] in GLOBAL_POOLING and layer["config"].get("keepdims") for layer in layers):
        return source
    reference = parity.load_keras2(source)
    rewritten = []
    for layer in layers:
        if layer["class_name"] in GLOBAL_POOLING and layer["config"].get("keepdims"):
            input_shape = list(reference.get_layer(layer["config"]["name"]).input_shape)
            rewritten += keepdims_pooling_layers(layer, input_shape)
        else:
            rewritten.append(layer)
    model_config["config"]["layers"] = rewritten
    target = source.parent / f"{source.stem}-tfjs.h5"
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as h5:
        h5.attrs["model_config"] = json.dumps(model_config).encode()
    return target


def keepdims_pooling_layers(layer: dict, input_shape) -> list[dict]:
    class_name, config = layer["class_name"], layer["config"]
    name = config["name"]
    rank = 2 if class_name.endswith("2D") else 1
    channels_first = config.get("data_format") == "channels_first"
    channels = None
    if isinstance(input_shape, list) and len(input_shape) == rank + 2:
        channels = input_shape[1] if channels_first else input_shape[-1]
    if not isinstance(channels, int):
        raise ConversionError(
            f"Layer '{name}' ({class_name}) uses keepdims=True on an input whose channel count is not saved; "
            "TF.js has no keepdims option."
        )
    pool_name = f"{name}__pool"
    pool = {**layer, "config": {**config, "name": pool_name, "keepdims": False}}
    reshape = {
        "class_name": "Reshape",
        "config": {
            "name": name,
            "trainable": config.get("trainable", True),
            "dtype": config.get("dtype", "float32"),
            "target_shape": [channels] + [1] * rank if channels_first else [1] * rank + [channels],
        },
    }
    if "inbound_nodes" in layer:  # a functional model: wire the Reshape to the pooling, call by call
        pool["name"] = pool_name
        calls = range(len(layer["inbound_nodes"]))
        reshape.update(name=name, inbound_nodes=[[[pool_name, call, 0, {}]] for call in calls])
    return [pool, reshape]

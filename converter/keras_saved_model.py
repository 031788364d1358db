"""Convert a legacy tf-keras SavedModel (``model.save("dir")``) into a TF.js
layers model without running anything from the upload.

``tensorflowjs_converter --input_format=keras_saved_model`` and every other
route through ``tf_keras.models.load_model`` revive the model from the
SavedModel, which executes Python embedded in it (a Lambda layer's code runs).
Here the directory is only *read*: the architecture is the JSON in
``keras_metadata.pb``, the weights come from the checkpoint reader, and the
checkpoint's object graph says which variable belongs to which layer. From
those we write the Keras-2 ``.h5`` file that tf-keras would have written for
the same model, and hand it to the converter's h5 route, which reads it with
h5py only. The ``.h5`` also serves the TensorFlow side of the parity check.

Runs inside the sandbox, next to the converter; no Django here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converter.errors import ConversionError
from converter.keras2 import GLOBAL_POOLING, check_model_classes, keepdims_pooling_layers

METADATA_FILE = "keras_metadata.pb"
MODEL_CLASSES = {"Sequential", "Functional", "Model"}
# Object-graph children of a Keras layer that list its weights in
# `layer.trainable_weights + layer.non_trainable_weights` order, the order
# tf-keras writes to (and reads from) an .h5 file.
TRAINABLE_LIST = ("trainable_variables",)
NON_TRAINABLE_LIST = ("keras_api", "non_trainable_variables")
# How a model's object-graph node names the layers it tracks.
TRACKED_LAYER = re.compile(r"layer(_with_weights)?-\d+")

Weights = list[tuple[str, np.ndarray]]  # (variable name, value), in tf-keras' order


class NoLayersTopology(ConversionError):
    """The SavedModel holds no Keras architecture that can be rebuilt without
    its Python code (a subclassed model). A graph model is still possible."""


@dataclass
class SavedKerasModel:
    model_config: dict  # {"class_name", "config"} as in an .h5 file's model_config
    keras_version: str
    # model path ("root", "root.layer-1", ...) -> layer name -> (object-graph
    # child name under that model, the layer's metadata)
    layers: dict[str, dict[str, tuple[str, dict]]]


def is_legacy_keras_saved_model(directory: Path) -> bool:
    """A SavedModel written by tf-keras' ``model.save(dir)`` (Keras 2)."""
    return (directory / "saved_model.pb").is_file() and (directory / METADATA_FILE).is_file()


def convert_legacy_keras_saved_model(
    saved_model_dir: Path, output_dir: Path, shard_bytes: int, h5_path: Path | None = None
) -> Path:
    """Write a TF.js layers model for ``saved_model_dir`` into ``output_dir``.

    Returns the Keras-2 ``.h5`` written on the way (``h5_path``, by default
    next to ``output_dir``), for the parity check. Raises ConversionError for
    models holding code (Lambda, custom classes) before reading any weight.
    """
    model = read_metadata(saved_model_dir)
    weights = read_layer_weights(saved_model_dir, model)
    model_config = adapt_for_tfjs(model)
    h5_path = h5_path or output_dir.parent / f"{output_dir.name}-keras2.h5"
    write_keras2_h5(h5_path, model_config, model.keras_version, weights)

    from tensorflowjs.converters import converter

    converter.dispatch_keras_h5_to_tfjs_layers_model_conversion(
        str(h5_path), output_dir=str(output_dir), weight_shard_size_bytes=shard_bytes
    )
    return h5_path


def read_metadata(saved_model_dir: Path) -> SavedKerasModel:
    """The model's checked architecture, parsed from ``keras_metadata.pb`` as
    JSON only."""
    from google.protobuf.message import DecodeError
    from tf_keras.protobuf import saved_metadata_pb2

    metadata = saved_metadata_pb2.SavedMetadata()
    try:
        metadata.ParseFromString((saved_model_dir / METADATA_FILE).read_bytes())
    except DecodeError:
        raise ConversionError(f"{METADATA_FILE} in the SavedModel is not a Keras metadata file.") from None
    root = next((node for node in metadata.nodes if node.node_path == "root"), None)
    if root is None:
        raise ConversionError(f"{METADATA_FILE} in the SavedModel does not describe the model.")
    root_metadata = _parse_json(root.metadata)
    class_name = root_metadata.get("class_name")
    config = root_metadata.get("config")
    if class_name not in MODEL_CLASSES or not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise NoLayersTopology(
            f"The model is a subclassed Keras model ({class_name!r}): its architecture is Python code, "
            "which Modelport never runs. Build it as a Sequential or functional model to get a TF.js "
            "layers model."
        )
    model_config = {"class_name": class_name, "config": config}
    check_model_classes(model_config)

    version = str(root_metadata.get("keras_version") or "")
    if not version.startswith("2."):
        import tf_keras

        version = tf_keras.__version__
    # The metadata names each node by its first path from the root, so a
    # layer of a model at path P is "P.layer-N" or "P.layer_with_weights-N".
    layers: dict[str, dict[str, tuple[str, dict]]] = {}
    for node in metadata.nodes:
        parent, _, child = node.node_path.rpartition(".")
        if parent and TRACKED_LAYER.fullmatch(child):
            layer_metadata = _parse_json(node.metadata)
            if isinstance(layer_metadata.get("name"), str):
                layers.setdefault(parent, {})[layer_metadata["name"]] = (child, layer_metadata)
    return SavedKerasModel(model_config, version, layers)


def _parse_json(text: str) -> dict:
    try:
        value = json.loads(text, object_hook=_decode_keras_json)
    except (ValueError, RecursionError):
        raise ConversionError(f"{METADATA_FILE} in the SavedModel holds invalid JSON.") from None
    if not isinstance(value, dict):
        raise ConversionError(f"{METADATA_FILE} in the SavedModel holds invalid JSON.")
    return value


def _decode_keras_json(item: dict):
    # tf-keras' SavedModel JSON encoder keeps tuples and shapes as tagged
    # objects; in an .h5 file they are plain JSON lists.
    tag = item.get("class_name")
    if tag in ("__tuple__", "TensorShape") and "items" in item:
        return None if item["items"] is None else list(item["items"])
    if tag == "__bytes__" and "value" in item:
        return item["value"]
    return item


def read_layer_weights(saved_model_dir: Path, model: SavedKerasModel) -> dict[str, Weights]:
    """The weights of each top-level layer (a nested model's are all its
    layers' weights), by layer name.

    Values come from the checkpoint reader, which parses tensors and runs no
    graph; the checkpoint's object graph says which variable is whose.
    Optimizer slots and metrics are never looked at."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    try:
        reader = tf.train.load_checkpoint(str(saved_model_dir / "variables" / "variables"))
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except (tf.errors.OpError, ValueError, DecodeError):
        raise ConversionError("The SavedModel's variables (variables/variables.*) cannot be read.") from None
    if not graph.nodes:
        raise ConversionError("The SavedModel's checkpoint has no object graph.")

    def child(node_id: int | None, name: str) -> int | None:
        if node_id is None:
            return None
        return next((c.node_id for c in graph.nodes[node_id].children if c.local_name == name), None)

    def listed(node_id: int | None, path: tuple[str, ...]) -> list[int]:
        for name in path:
            node_id = child(node_id, name)
        if node_id is None:
            return []
        items = [(int(c.local_name), c.node_id) for c in graph.nodes[node_id].children if c.local_name.isdigit()]
        return [item for _, item in sorted(items)]

    def read(layer_name: str, variable_id: int) -> tuple[str, np.ndarray]:
        value = next((a for a in graph.nodes[variable_id].attributes if a.name == "VARIABLE_VALUE"), None)
        try:
            return value.full_name, reader.get_tensor(value.checkpoint_key)
        except (AttributeError, tf.errors.OpError, ValueError):
            raise ConversionError(f"The SavedModel's checkpoint lacks a weight of layer '{layer_name}'.") from None

    tracked = model.layers.get("root", {})
    weights = {}
    for layer in model.model_config["config"]["layers"]:
        name = layer["config"]["name"]
        node_id = child(0, tracked[name][0]) if name in tracked else None
        if node_id is None:
            if layer.get("class_name") != "InputLayer":
                raise ConversionError(f"The SavedModel's checkpoint has no entry for layer '{name}'.")
            continue
        variable_ids = listed(node_id, TRAINABLE_LIST) + listed(node_id, NON_TRAINABLE_LIST)
        weights[name] = [read(name, variable_id) for variable_id in variable_ids]
    return weights


def adapt_for_tfjs(model: SavedKerasModel) -> dict:
    """The model config with the layer options TF.js lacks rewritten into
    equivalent layers; tf-keras builds the same model from it.

    Global pooling with ``keepdims=True`` (MobileNet's head) becomes the
    pooling, renamed ``<name>__pool``, then a Reshape that keeps the name:
    TF.js ignores keepdims and would hand the next layer a flat tensor."""
    model_config = json.loads(json.dumps(model.model_config))

    def rewrite(model_config: dict, path: str) -> None:
        tracked = model.layers.get(path, {})
        rewritten = []
        for layer in model_config["config"]["layers"]:
            class_name, config = layer["class_name"], layer["config"]
            child, metadata = tracked.get(config["name"], (None, {}))
            if class_name in MODEL_CLASSES and child:
                rewrite(layer, f"{path}.{child}")
            if class_name in GLOBAL_POOLING and config.get("keepdims"):
                rewritten += keepdims_pooling_layers(layer, metadata.get("build_input_shape"))
            else:
                rewritten.append(layer)
        model_config["config"]["layers"] = rewritten

    rewrite(model_config, "root")
    return model_config


def write_keras2_h5(path: Path, model_config: dict, keras_version: str, weights: dict[str, Weights]) -> None:
    """Write the .h5 file tf-keras' ``model.save("x.h5")`` would have written
    for ``model_config`` (without optimizer state), laid out as in tf-keras'
    hdf5_format.py. Layers missing from ``weights`` have none."""
    import h5py
    from tf_keras.src.saving.legacy.hdf5_format import save_attributes_to_hdf5_group

    layers = model_config["config"]["layers"]
    if model_config["class_name"] == "Sequential" and layers and layers[0]["class_name"] == "InputLayer":
        layers = layers[1:]  # Sequential.layers leaves out its InputLayer, and so does the .h5
    layer_names = [layer["config"]["name"] for layer in layers]
    # TF.js matches weights to layers by name: two nested models with a
    # layer of the same name would give two weights the same name.
    owners: dict[str, str] = {}
    for layer_name in layer_names:
        for weight_name, _ in weights.get(layer_name, []):
            if weight_name in owners:
                raise ConversionError(
                    f"Layers '{owners[weight_name]}' and '{layer_name}' both hold a weight named '{weight_name}'; "
                    "TF.js matches weights by name. Give the layers inside nested models unique names."
                )
            owners[weight_name] = layer_name

    with h5py.File(path, "w") as h5:
        h5.attrs["keras_version"] = keras_version
        h5.attrs["backend"] = "tensorflow"
        h5.attrs["model_config"] = json.dumps(model_config).encode("utf8")
        group = h5.create_group("model_weights")
        save_attributes_to_hdf5_group(group, "layer_names", [name.encode("utf8") for name in layer_names])
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = keras_version.encode("utf8")
        for layer_name in sorted(layer_names) + ["top_level_model_weights"]:
            layer_group = group.create_group(layer_name)
            layer_weights = weights.get(layer_name, [])
            weight_names = [f"{weight_name}:0" for weight_name, _ in layer_weights]
            save_attributes_to_hdf5_group(layer_group, "weight_names", [name.encode("utf8") for name in weight_names])
            for weight_name, (_, value) in zip(weight_names, layer_weights, strict=True):
                value = np.asarray(value)
                dataset = layer_group.create_dataset(weight_name, value.shape, dtype=value.dtype)
                if value.shape:
                    dataset[:] = value
                else:
                    dataset[()] = value

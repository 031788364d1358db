"""What a version's model.json says about the model: its signature (input
and output names, shapes, dtypes), a layer summary like Keras'
``model.summary()`` (name, class, output shape, parameters) with the weight
bytes a cut at each layer downloads, and the weight bytes of the model.

Computed from the stored model.json, which never changes: cached by key.
"""

from __future__ import annotations

import functools
import json
import math

from converter.modeljson import weight_nbytes
from registry import cuts, storage
from registry.errors import Refused
from registry.models import Version

MAX_ROWS = 1000
GRAPH_DTYPES = {"DT_FLOAT": "float32", "DT_INT32": "int32", "DT_BOOL": "bool", "DT_STRING": "string"}


class SummaryError(Refused):
    """A ready version whose model.json cannot be summarised."""

    default_status = 409


def summarise(version: Version) -> dict:
    """The summary of a ready version (empty lists if model.json cannot say);
    SummaryError if its model.json is laid out in a way this cannot read."""
    try:
        shapes = {layer["name"]: layer.get("output_shape") for layer in version.layers}
        made = _summary(version.model_json_key, version.output_format, json.dumps(shapes, sort_keys=True))
        checked = version.parity.get("inputs") or []
        if len(checked) == len(made["inputs"]) and any(tensor["shape"] is None for tensor in made["inputs"]):
            # A nested first model keeps its input shape to itself: the shapes the parity check fed instead.
            inputs = [
                {**tensor, "shape": [None, *ran["shape"][1:]]}
                for tensor, ran in zip(made["inputs"], checked, strict=True)
            ]
            made = {**made, "inputs": inputs}
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        # Publishing checks what TF.js needs to load model.json (converter/modeljson.py),
        # not every field read here: a layer without its config, a shape that is not a list.
        raise SummaryError(
            f"Version {version.number} cannot be summarised: its model.json does not describe its layers, "
            "signature or weights in a form Modelport can read. The model itself is served as it is."
        ) from None
    return made


@functools.lru_cache(maxsize=256)
def _summary(key: str, output_format: str, shapes_json: str) -> dict:
    document = json.loads(storage.read_blob(key))
    params, nbytes = _weights_by_scope(document)
    summary = {
        "parameters": sum(params.values()),
        "weight_bytes": sum(nbytes.values()),
        "inputs": [],
        "outputs": [],
        "layers": [],
        "more_layers": 0,
    }
    if output_format == Version.OutputFormat.GRAPH:
        signature = document.get("signature") or {}
        summary["inputs"] = _graph_tensors(signature.get("inputs"))
        summary["outputs"] = _graph_tensors(signature.get("outputs"))
        return summary
    topology = document["modelTopology"]
    model_config = topology.get("model_config", topology)
    shapes = json.loads(shapes_json)
    layers = cuts.top_level_layers(model_config)
    rows = []
    for layer in layers[:MAX_ROWS]:
        name = layer["config"]["name"]
        scopes = cuts.weight_scopes(layer)
        try:
            needed = cuts.cut_topology(model_config, name)[1]
        except (cuts.CutError, KeyError, IndexError, TypeError):
            needed = set()
        rows.append(
            {
                "name": name,
                "class_name": layer.get("class_name", ""),
                "output_shape": shapes.get(name),
                "parameters": sum(params.get(scope, 0) for scope in scopes),
                "cut_bytes": sum(nbytes.get(scope, 0) for scope in needed),
            }
        )
    summary["layers"] = rows
    summary["more_layers"] = max(0, len(layers) - MAX_ROWS)
    summary["inputs"], summary["outputs"] = _layers_signature(model_config, layers, shapes)
    return summary


def _weights_by_scope(document: dict) -> tuple[dict[str, int], dict[str, int]]:
    """Parameters and stored bytes per weight scope (the layer a weight's name starts with)."""
    params: dict[str, int] = {}
    nbytes: dict[str, int] = {}
    for group in document.get("weightsManifest", []):
        for spec in group.get("weights", []):
            scope = str(spec.get("name", "")).split("/", 1)[0]
            params[scope] = params.get(scope, 0) + math.prod(spec.get("shape") or [])
            nbytes[scope] = nbytes.get(scope, 0) + (weight_nbytes(spec) or 0)
    return params, nbytes


def _graph_tensors(tensors) -> list[dict]:
    if not isinstance(tensors, dict):
        return []
    return [
        {
            "name": key.removesuffix(":0"),
            "dtype": GRAPH_DTYPES.get(spec.get("dtype"), spec.get("dtype", "")),
            "shape": [
                None if int(dim.get("size", -1)) < 0 else int(dim["size"])
                for dim in spec.get("tensorShape", {}).get("dim", [])
            ],
        }
        for key, spec in sorted(tensors.items())
    ]


def _input_shape(config: dict):
    return config.get("batch_input_shape") or config.get("batch_shape")


def _dtype(config: dict) -> str:
    dtype = config.get("dtype")
    return dtype if isinstance(dtype, str) else "float32"


def _layers_signature(model_config: dict, layers: list[dict], shapes: dict) -> tuple[list[dict], list[dict]]:
    by_name = {layer["config"]["name"]: layer for layer in layers}
    if model_config.get("class_name") == "Sequential":
        first = layers[0]["config"] if layers else {}
        inputs = [{"name": first.get("name", ""), "shape": _input_shape(first), "dtype": _dtype(first)}]
        last = layers[-1]["config"]["name"] if layers else ""
        outputs = [{"name": last, "shape": shapes.get(last), "dtype": "float32"}]
        return inputs, outputs
    config = model_config.get("config", {})
    inputs = []
    for item in config.get("input_layers", []):
        layer = by_name.get(item[0], {}).get("config", {})
        inputs.append({"name": item[0], "shape": _input_shape(layer), "dtype": _dtype(layer)})
    outputs = [
        {"name": item[0], "shape": shapes.get(item[0]), "dtype": "float32"} for item in config.get("output_layers", [])
    ]
    return inputs, outputs

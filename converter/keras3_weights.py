"""Reading a Keras 3 model file, and the weights tfjs-layers will ask for.

Only the JSON config and the weight arrays are read (zipfile, h5py); each
weight array gets the name, and the place in the list, that tfjs-layers gives
the matching variable.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from converter import hdf5
from converter.archive import Limits
from converter.errors import ConversionError
from converter.keras3_config import RECURRENT

CONFIG_BYTES = 64 * 1024**2
TOP_LEVEL = "top_level_model_weights"  # a legacy .h5's group for variables a model owns itself


def _with_bias(*names: str):
    return lambda config: list(names) + (["bias"] if config.get("use_bias", True) else [])


def _normalization(config: dict) -> list[str]:
    return (["gamma"] if config.get("scale", True) else []) + (["beta"] if config.get("center", True) else [])


# Variables of each weighted layer in Keras' creation order. A pair renames the
# variable for tfjs (Keras 3 calls the depthwise kernel plain "kernel").
OWN_VARIABLES = {
    "Dense": _with_bias("kernel"),
    "Conv1D": _with_bias("kernel"),
    "Conv2D": _with_bias("kernel"),
    "Conv3D": _with_bias("kernel"),
    "Conv2DTranspose": _with_bias("kernel"),
    "Conv3DTranspose": _with_bias("kernel"),
    "DepthwiseConv2D": lambda c: [("kernel", "depthwise_kernel")] + (["bias"] if c.get("use_bias", True) else []),
    "SeparableConv2D": _with_bias("depthwise_kernel", "pointwise_kernel"),
    "Embedding": lambda c: ["embeddings"],
    "PReLU": lambda c: ["alpha"],
    "LayerNormalization": _normalization,
    "BatchNormalization": _normalization,
    "LayerScale": lambda c: [("variable", "gamma")],  # becomes a BatchNormalization (keras3.py)
}
# Variables that are never trainable (they come after the trainable ones).
STATISTICS = {
    "BatchNormalization": ["moving_mean", "moving_variance"],
    # Normalization becomes a BatchNormalization (keras3.py): its mean and
    # variance are the moving statistics; its sample count is read, not served.
    "Normalization": [("mean", "moving_mean"), ("variance", "moving_variance"), ("count", None)],
}


# --- Reading the file ------------------------------------------------------------------


def _read_keras_archive(source: Path) -> tuple[dict, str, IO[bytes]]:
    with zipfile.ZipFile(source) as archive:
        members = archive.infolist()
        limits = Limits()
        if len(members) > limits.max_members or sum(m.file_size for m in members) > limits.max_total_bytes:
            raise ConversionError(
                f"The .keras archive holds more than {limits.max_members} files or {limits.max_total_bytes} bytes."
            )
        names = {member.filename for member in members}
        if "config.json" not in names or "model.weights.h5" not in names:
            raise ConversionError(
                "The .keras archive must contain config.json and model.weights.h5 "
                "(sharded .keras weights are not supported)."
            )
        config = _json(_read_member(archive, "config.json", io.BytesIO(), CONFIG_BYTES).getvalue(), "config.json")
        metadata = {}
        if "metadata.json" in names:
            metadata = _json(
                _read_member(archive, "metadata.json", io.BytesIO(), CONFIG_BYTES).getvalue(), "metadata.json"
            )
        # h5py needs random access: unpack the weights to an anonymous temporary file.
        weights = _read_member(archive, "model.weights.h5", tempfile.NamedTemporaryFile(), limits.max_total_bytes)
        hdf5.check_self_contained(Path(weights.name), "model.weights.h5 in the .keras archive")
    version = str(metadata.get("keras_version", "3"))
    if not version.startswith("3"):
        weights.close()
        raise ConversionError(
            f"The .keras archive was written by Keras {version}; only Keras 3 .keras files are supported. "
            "Save a Keras 2 model as .h5."
        )
    return config, version, weights


def _read_member(archive: zipfile.ZipFile, name: str, target: IO[bytes], limit: int) -> IO[bytes]:
    """Copy one member, counting bytes: a zip may lie about its sizes."""
    with archive.open(name) as member:
        while chunk := member.read(1024 * 1024):
            limit -= len(chunk)
            if limit < 0:
                target.close()
                raise ConversionError(f"{name} in the .keras archive unpacks to more than the allowed size.")
            target.write(chunk)
    target.seek(0)
    return target


def _read_h5_config(h5) -> tuple[dict, str]:
    if "model_config" not in h5.attrs or "model_weights" not in h5:
        raise ConversionError(
            "The HDF5 file holds weights only, without the model's architecture. "
            "Save the whole model with model.save('model.h5')."
        )
    version = _text(h5.attrs.get("keras_version", b""))
    if not version.startswith("3"):
        raise ConversionError(f"The HDF5 file was written by Keras {version or '(unknown)'}, not Keras 3.")
    return _json(h5.attrs["model_config"], "model_config"), version


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _json(raw, what: str) -> dict:
    try:
        value = json.loads(_text(raw))
    except (ValueError, UnicodeDecodeError):
        raise ConversionError(f"The model's {what} is not valid JSON.") from None
    if not isinstance(value, dict):
        raise ConversionError(f"The model's {what} is not a JSON object.")
    return value


def _array(dataset, request: _Request) -> np.ndarray:
    value = np.asarray(dataset[()])
    if dataset.attrs.get("dtype") == "bfloat16":  # Keras keeps bfloat16 as raw 16-bit words
        value = (value.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    if value.dtype.kind != "f":
        raise ConversionError(f"Weight {request.keras!r} of layer '{request.layer}' is not a float array.")
    if request.reshape is not None:
        if value.size != int(np.prod(request.reshape)):
            raise ConversionError(f"Weight {request.keras!r} of layer '{request.layer}' has an unexpected shape.")
        value = value.reshape(request.reshape)
    return value.astype(np.float32)


@dataclass
class _Request:
    """One weight tfjs needs, and where Keras 3 saved it."""

    name: str | None  # tfjs weight name (None: read but not served)
    keras: str  # Keras 3 variable name
    layer: str  # layer owning it
    top: str  # top-level layer whose group holds it in a legacy .h5
    group: str  # group holding it in a .keras weights file ("…/vars")
    trainable: bool  # as Keras counted it when saving (legacy .h5 order)
    reshape: tuple | None = None  # the shape tfjs needs, when a rewrite changes it (same values, same order)


def _read_keras_weights(h5, walker: _WeightRequests) -> list[dict]:
    """model.weights.h5 keeps each object's variables as `<path>/vars/0..n-1`."""
    for group, name in walker.layer_groups.items():
        saved = _text(h5[group].attrs.get("name", name)) if group in h5 else name
        if saved != name:  # newer Keras records which layer each group belongs to
            raise ConversionError(
                f"The weights file does not match the model config: layer '{name}' would get the weights "
                f"saved for '{saved}'."
            )
    counts: dict[str, int] = {}
    out = []
    for request in walker.requests:
        index = counts.get(request.group, 0)
        counts[request.group] = index + 1
        key = f"{request.group}/{index}"
        if key not in h5:
            raise ConversionError(f"The weights file has no value for {request.keras!r} of layer '{request.layer}'.")
        out.append({"name": request.name, "data": _array(h5[key], request) if request.name else None})
    for group in walker.layer_groups:
        counts.setdefault(group, 0)
    for group, count in counts.items():
        saved = len(h5[group]) if group in h5 else 0
        if saved != count:
            layer = walker.layer_groups.get(group) or next(r.layer for r in walker.requests if r.group == group)
            raise ConversionError(f"Layer '{layer}' has {saved} saved variables, {count} were expected.")
    return out


def _read_legacy_weights(model_weights, requests: list[_Request]) -> list[dict]:
    """A Keras-3 .h5 keeps, per top-level layer, trainable_weights + non_trainable_weights."""
    by_top: dict[str, list[_Request]] = {}
    for request in requests:
        by_top.setdefault(request.top, []).append(request)
    for top in model_weights:
        if top not in by_top and len(model_weights[top].attrs.get("weight_names", [])) and top != TOP_LEVEL:
            raise ConversionError(f"Layer '{top}' has saved weights, but none were expected.")
    values: dict[int, np.ndarray] = {}
    for top, wanted in by_top.items():
        if top not in model_weights:
            raise ConversionError(f"The weights file has no weights for layer '{top}'.")
        group = model_weights[top]
        names = [_text(n) for n in group.attrs.get("weight_names", [])]
        ordered = [r for r in wanted if r.trainable] + [r for r in wanted if not r.trainable]
        if len(names) != len(ordered):
            raise ConversionError(f"Layer '{top}' has {len(names)} saved weights, {len(ordered)} were expected.")
        for saved, request in zip(names, ordered, strict=True):
            if saved.rsplit("/", 1)[-1].split(":")[0] != request.keras:
                raise ConversionError(
                    f"Layer '{request.layer}': saved weight {saved!r} is not the expected {request.keras!r}."
                )
            values[id(request)] = _array(group[saved], request) if request.name else None
    return [{"name": r.name, "data": values[id(r)]} for r in requests]


def _snake(name: str) -> str:
    """keras.src.utils.naming.to_snake_case: how .keras files name each layer's group."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


# --- Weights tfjs will ask for ---------------------------------------------------------


class _WeightRequests:
    """Lists the weights tfjs will ask for, in order, and where Keras 3 saved each."""

    def __init__(self):
        self.requests: list[_Request] = []
        self.layer_groups: dict[str, str] = {}  # "<path>/vars" in a .keras weights file -> layer name
        self.normalizations: set[str] = set()  # moving_variance weights of rewritten Normalization layers
        self.constants: list[dict] = []  # {"name", "data"}: weights a rewrite takes from the config

    def _group(self, path: str, class_name: str, used: dict[str, int]) -> str:
        # saving_lib names each layer of a model by its snake-cased class, numbered on repeats.
        base = _snake(class_name)
        used[base] = used.get(base, -1) + 1
        return _join(path, "layers", base if used[base] == 0 else f"{base}_{used[base]}")

    def _weights(self, layer: dict, name: str, prefix: str, group: str, top: str, trainable: bool) -> None:
        """Add the weights of one (non-model) layer, in Keras' `layer.weights` order."""
        class_name = layer["class_name"]
        config = layer["config"]
        trainable = trainable and config.get("trainable", True) is not False
        if class_name in RECURRENT:
            names = ["kernel", "recurrent_kernel"] + (["bias"] if config.get("use_bias", True) else [])
            for keras_name in names:
                self._add(prefix, keras_name, keras_name, name, top, _join(group, "cell"), trainable)
        elif class_name == "Bidirectional":
            inner = config["layer"]
            base = _forward_base(inner)
            backward = config.get("backward_layer") or inner
            self._weights(inner, name, f"{prefix}/forward_{base}", _join(group, "forward_layer"), top, trainable)
            self._weights(backward, name, f"{prefix}/backward_{base}", _join(group, "backward_layer"), top, trainable)
        elif class_name == "TimeDistributed":
            self._weights(config["layer"], name, prefix, _join(group, "layer"), top, trainable)
        else:
            for item in OWN_VARIABLES.get(class_name, lambda c: [])(config):
                keras_name, tfjs_name = item if isinstance(item, tuple) else (item, item)
                self._add(prefix, keras_name, tfjs_name, name, top, group, trainable)
            # A Normalization given mean= and variance= keeps them in its config, not as variables.
            fixed = class_name == "Normalization" and config.get("mean") is not None
            for item in [] if fixed else STATISTICS.get(class_name, []):
                keras_name, tfjs_name = item if isinstance(item, tuple) else (item, item)
                self._add(prefix, keras_name, tfjs_name, name, top, group, False)

    def _add(
        self, prefix: str, keras: str, tfjs: str | None, layer: str, top: str, group: str, trainable: bool
    ) -> None:
        name = f"{prefix}/{tfjs}" if tfjs else None  # None: a saved variable TF.js does not take
        self.requests.append(_Request(name, keras, layer, top, _join(group, "vars"), trainable))


def _forward_base(inner: dict) -> str:
    # Keras 3 saves the forward copy (named "forward_<rnn>"); tfjs prefixes "forward_" itself.
    name = inner["config"].get("name") or "rnn"
    return name[len("forward_") :] if name.startswith("forward_") else name

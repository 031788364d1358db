"""The one validator of TF.js model.json files: uploaded ones (inside the
sandbox) and the converter's output (in the worker, before publishing).

Pure Python, no TensorFlow: the worker imports it too.
"""

from __future__ import annotations

import base64
import json
import math
import re

from converter.errors import ConversionError

MAX_MODEL_JSON_BYTES = 64 * 1024 * 1024
MAX_WEIGHT_FILES = 10_000
# Weight file names the converter writes: flat, plain.
FLAT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
# Uploaded TF.js models may keep shards in subdirectories.
RELATIVE_PATH = re.compile(r"^[A-Za-z0-9_.-][A-Za-z0-9_./-]{0,500}$")
DTYPE_BYTES = {
    "float32": 4,
    "int32": 4,
    "bool": 1,
    "uint8": 1,
    "uint16": 2,
    "float16": 2,
    "int8": 1,
    "int16": 2,
    "complex64": 8,
}


def weight_nbytes(spec: dict) -> int | None:
    """Bytes a weightsManifest entry takes, or None for strings (their
    lengths are in the data)."""
    quantization = spec.get("quantization")
    dtype = quantization.get("dtype") if isinstance(quantization, dict) else spec.get("dtype")
    shape = spec.get("shape") or []
    if dtype not in DTYPE_BYTES or not all(isinstance(d, int) and d >= 0 for d in shape):
        return None
    return math.prod(shape) * DTYPE_BYTES[dtype]


def parse(raw: bytes, flat: bool) -> dict:
    """A model.json document with a valid shape and safe weight paths (plain
    file names if ``flat``, else relative paths without ``..``)."""
    if len(raw) > MAX_MODEL_JSON_BYTES:
        raise ConversionError("model.json is larger than 64 MiB.")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ConversionError(f"model.json is not valid JSON: {str(exc)[:200]}.") from None
    if not isinstance(document, dict) or not isinstance(document.get("modelTopology"), dict):
        raise ConversionError("model.json has no modelTopology: it is not a TF.js model.")
    manifest = document.get("weightsManifest")
    if not isinstance(manifest, list) or not all(isinstance(group, dict) for group in manifest):
        raise ConversionError("model.json has no weightsManifest: it is not a TF.js model.")
    seen: set[str] = set()
    for group in manifest:
        paths, weights = group.get("paths"), group.get("weights")
        if (
            not isinstance(paths, list)
            or not isinstance(weights, list)
            or not all(isinstance(w, dict) for w in weights)
        ):
            raise ConversionError("model.json has a weightsManifest group without paths or weights.")
        for name in paths:
            if not isinstance(name, str) or not _safe(name, flat) or name == "model.json" or name in seen:
                raise ConversionError(f"model.json refers to a weight file outside the model: {str(name)[:200]!r}.")
            seen.add(name)
    if len(seen) > MAX_WEIGHT_FILES:
        raise ConversionError(f"model.json names more than {MAX_WEIGHT_FILES} weight files.")
    return document


def sri(sha256_hex: str) -> str:
    """The Subresource Integrity value (``sha256-<base64>``) of a sha256 hex digest."""
    return "sha256-" + base64.b64encode(bytes.fromhex(sha256_hex)).decode()


def add_integrity(document: dict) -> None:
    """Publish each weight file's integrity in model.json, keyed by the path
    as written, so a browser can check what it fetched (static/js/verify.mjs).
    The paths are content-addressed (``…/blobs/<sha256>``); tfjs ignores the key."""
    document["integrity"] = {
        path: sri(path.rsplit("/", 1)[-1]) for group in document["weightsManifest"] for path in group["paths"]
    }


def _safe(name: str, flat: bool) -> bool:
    if flat:
        return bool(FLAT_NAME.match(name))
    return bool(RELATIVE_PATH.match(name)) and ".." not in name.split("/") and not name.startswith("/")


def check_group_bytes(group: dict, file_bytes: int) -> None:
    """A group's files must hold exactly the bytes its weights declare."""
    expected = [weight_nbytes(spec) for spec in group["weights"]]
    if None not in expected and sum(expected) != file_bytes:
        raise ConversionError(f"The weight files hold {file_bytes} bytes, but model.json declares {sum(expected)}.")


# Nodes that compute nothing a user would ask for by name.
PLUMBING_OPS = frozenset({"Const", "Placeholder", "NoOp", "Identity", "IdentityN", "StopGradient", "Enter", "Exit"})
MAX_NODES = 5000


def graph_nodes(document: dict) -> list[dict]:
    """The named nodes of a graph model a user can ask for with
    ``model.execute(inputs, name)`` (a feature extractor from a graph model)."""
    nodes = document["modelTopology"].get("node") or []
    return [
        {"name": node["name"], "class_name": node.get("op", ""), "output_shape": None}
        for node in nodes
        if isinstance(node, dict) and isinstance(node.get("name"), str) and node.get("op") not in PLUMBING_OPS
    ][:MAX_NODES]


def is_graph_model(document: dict) -> bool:
    return "node" in document["modelTopology"]

"""Transfer-learning bases: a layers model served cut at a named layer.

``/m/{owner}/{name}/{ref}/cut/{layer}/model.json`` is the model whose output
is that layer's output (what ``keras.Model(m.inputs, m.get_layer(layer).output)``
computes), with only the weights it needs. Weight groups whose weights are all
kept are reused as they are (same blobs, same URLs, already in the browser's
cache); a group holding both kept and dropped weights gets a new blob with
just the kept bytes. Layer-aligned groups (converter/layout.py) keep that
to about one group per cut.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json

from django.db import IntegrityError, transaction

from converter import modeljson
from converter.modeljson import weight_nbytes
from registry import storage
from registry.models import Blob, Cut, Version


class CutError(Exception):
    def __init__(self, message: str, status: int = 404):
        super().__init__(message)
        self.message = message
        self.status = status


def top_level_layers(model_config: dict) -> list[dict]:
    return model_config.get("config", {}).get("layers", []) if isinstance(model_config.get("config"), dict) else []


def weight_scopes(layer: dict) -> set[str]:
    """Names a layer's weights start with: its own and its sublayers'."""
    scopes = {layer["config"]["name"]}
    for sublayer in layer.get("config", {}).get("layers", []) or []:
        scopes |= weight_scopes(sublayer)
    return scopes


def cut_topology(model_config: dict, layer_name: str) -> tuple[dict, set[str]]:
    """The config of the model ending at ``layer_name``, and the scopes of
    the weights it uses."""
    layers = top_level_layers(model_config)
    names = [layer["config"]["name"] for layer in layers]
    if layer_name not in names:
        raise CutError(f"The model has no top-level layer named '{layer_name}'.")
    config = copy.deepcopy(model_config)
    if model_config["class_name"] == "Sequential":
        kept = layers[: names.index(layer_name) + 1]
        config["config"]["layers"] = copy.deepcopy(kept)
    else:
        by_name = dict(zip(names, layers, strict=True))
        needed, stack = set(), [layer_name]
        while stack:
            name = stack.pop()
            if name in needed:
                continue
            needed.add(name)
            for node in by_name[name].get("inbound_nodes", []):
                stack.extend(inbound[0] for inbound in node)
        kept = [layer for layer in layers if layer["config"]["name"] in needed]
        config["config"]["layers"] = copy.deepcopy(kept)
        config["config"]["input_layers"] = [
            item for item in model_config["config"]["input_layers"] if item[0] in needed
        ]
        config["config"]["output_layers"] = [[layer_name, 0, 0]]
    scopes = set().union(*(weight_scopes(layer) for layer in kept)) if kept else set()
    return config, scopes


def _weight_bytes(spec: dict) -> int:
    size = weight_nbytes(spec)
    if size is None:
        dtype = spec["quantization"]["dtype"] if spec.get("quantization") else spec["dtype"]
        raise CutError(f"Weights of type {dtype} cannot be cut.", status=400)
    return size


def _sha_of(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def cut(version: Version, layer_name: str) -> Cut:
    """The stored cut of ``version`` at ``layer_name``, made on first use."""
    existing = version.cuts.filter(layer=layer_name).first()
    if existing:
        return existing
    if version.output_format != Version.OutputFormat.LAYERS:
        raise CutError("Only layers models can be cut; this version is a graph model.", status=400)
    document = json.loads(storage.read_blob(version.model_json_key))
    topology = document["modelTopology"]
    config, scopes = cut_topology(topology["model_config"], layer_name)
    topology["model_config"] = config
    topology.pop("training_config", None)
    document.pop("trainingConfig", None)
    groups, blobs = [], []
    for group in document["weightsManifest"]:
        kept = [spec for spec in group["weights"] if spec["name"].split("/", 1)[0] in scopes]
        shas = [_sha_of(path) for path in group["paths"]]
        if not kept:
            continue
        if len(kept) == len(group["weights"]):
            groups.append({"paths": [f"../../../blobs/{sha}" for sha in shas], "weights": group["weights"]})
            blobs += [{"sha256": sha, "size": _blob_size(version, sha)} for sha in shas]
            continue
        sha, size = _store_partial_group(version, group["weights"], shas, kept)
        groups.append({"paths": [f"../../../blobs/{sha}"], "weights": kept})
        blobs.append({"sha256": sha, "size": size})
    document["weightsManifest"] = groups
    modeljson.add_integrity(document)
    body = json.dumps(document, separators=(",", ":")).encode()
    key = f"cuts/{version.uid}/{hashlib.sha256(layer_name.encode()).hexdigest()[:16]}/model.json"
    storage.put_blob(key, io.BytesIO(body))
    try:
        with transaction.atomic():
            return Cut.objects.create(
                version=version, layer=layer_name, model_json_key=key,
                model_json_sha256=hashlib.sha256(body).hexdigest(), blobs=blobs,
            )  # fmt: skip
    except IntegrityError:  # made concurrently by another request
        return version.cuts.get(layer=layer_name)


def _blob_size(version: Version, sha: str) -> int:
    return next((blob["size"] for blob in version.blobs if blob["sha256"] == sha), 0)


def _store_partial_group(version: Version, weights: list[dict], shas: list[str], kept: list[dict]) -> tuple[str, int]:
    data = b"".join(storage.read_blob(storage.blob_key(sha)) for sha in shas)
    parts, offset = [], 0
    for spec in weights:
        size = _weight_bytes(spec)
        if spec in kept:
            parts.append(data[offset : offset + size])
        offset += size
    content = b"".join(parts)
    sha = hashlib.sha256(content).hexdigest()
    key = storage.blob_key(sha)
    if not storage.blob_exists(key):
        storage.put_blob(key, io.BytesIO(content))
    Blob.objects.get_or_create(model_id=version.model_id, sha256=sha, defaults={"size": len(content)})
    return sha, len(content)

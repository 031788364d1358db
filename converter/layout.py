"""Lay weights out so browsers re-download only what changed.

tensorflowjs concatenates all weights into one group cut every 4 MiB, so a
small model (or a head together with most of its base) is one shard and a
retrained head changes every byte a browser has cached. Here weights are
regrouped at layer boundaries into groups of about a sixteenth of the model
(64 KiB to the shard size): a change confined to a few layers changes only
their groups, which are stored and addressed by content.

Runs inside the sandbox on the converter's output, before the parity check,
so the layout that is served is the layout that was proven.
"""

from __future__ import annotations

import json
from pathlib import Path

MIN_GROUP_BYTES = 64 * 1024
GROUPS_PER_MODEL = 16


def _scope(name: str) -> str:
    """The layer a weight belongs to: its name without the last segment."""
    return name.rsplit("/", 1)[0] if "/" in name else name


def _nbytes(entry: dict) -> int:
    data = entry["data"]
    return int(data.nbytes) if hasattr(data, "nbytes") else sum(len(item) for item in data.ravel())


def plan_groups(entries: list[dict], shard_bytes: int) -> list[list[dict]]:
    """Pack consecutive layers into groups of about total/16 bytes, never
    splitting a layer's weights across groups."""
    total = sum(_nbytes(entry) for entry in entries)
    target = min(shard_bytes, max(MIN_GROUP_BYTES, total // GROUPS_PER_MODEL))
    layers: list[list[dict]] = []
    for entry in entries:
        if layers and _scope(layers[-1][-1]["name"]) == _scope(entry["name"]):
            layers[-1].append(entry)
        else:
            layers.append([entry])
    groups: list[list[dict]] = []
    size = 0
    for layer in layers:
        layer_bytes = sum(_nbytes(entry) for entry in layer)
        if groups and size + layer_bytes <= target:
            groups[-1].extend(layer)
            size += layer_bytes
        else:
            groups.append(list(layer))
            size = layer_bytes
    return groups


def regroup(output: Path, shard_bytes: int) -> None:
    """Rewrite ``output``'s weight files with layer-aligned groups."""
    from tensorflowjs import read_weights, write_weights

    model_json_path = output / "model.json"
    model_json = json.loads(model_json_path.read_text())
    manifest = model_json["weightsManifest"]
    entries = read_weights.read_weights(manifest, str(output), flatten=True)
    for group in manifest:
        for path in group["paths"]:
            (output / path).unlink()
    groups = plan_groups(entries, shard_bytes)
    model_json["weightsManifest"] = write_weights.write_weights(
        groups, str(output), shard_size_bytes=shard_bytes, write_manifest=False
    )
    model_json_path.write_text(json.dumps(model_json))

"""Check the sandbox's output before anything is published.

The converter ran on untrusted input, so its output is untrusted too:
model.json must parse and have the expected shape, every weight path must be
a plain file name in the output directory, and the shards' total size must
match what the manifest declares.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from conversions.errors import ConversionError, SystemFailure
from conversions.formats import MAX_MODEL_JSON_BYTES
from registry import storage

SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
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


@dataclass(frozen=True)
class OutputFile:
    path: str
    size: int
    sha256: str
    local: Path

    def as_blob(self) -> dict:
        return {"sha256": self.sha256, "size": self.size}


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def weight_nbytes(spec: dict) -> int | None:
    """Bytes a weightsManifest entry takes, or None for strings (their
    lengths are in the data)."""
    quantization = spec.get("quantization")
    dtype = quantization["dtype"] if quantization else spec.get("dtype")
    if dtype not in DTYPE_BYTES:
        return None
    return math.prod(spec.get("shape") or []) * DTYPE_BYTES[dtype]


def validate_output(output_dir: Path, output_format: str) -> tuple[dict, list[OutputFile]]:
    """Return the parsed model.json and the weight files to publish."""
    model_json_path = output_dir / "model.json"
    if not model_json_path.is_file() or model_json_path.is_symlink():
        raise SystemFailure("the converter wrote no model.json")
    if model_json_path.stat().st_size > MAX_MODEL_JSON_BYTES:
        raise ConversionError("The converted model.json is larger than 64 MiB.")
    try:
        document = json.loads(model_json_path.read_bytes())
    except ValueError as exc:
        raise SystemFailure(f"the converter wrote invalid model.json: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("modelTopology"), dict):
        raise SystemFailure("model.json has no modelTopology")
    manifest = document.get("weightsManifest")
    if not isinstance(manifest, list):
        raise SystemFailure("model.json has no weightsManifest")
    if output_format == "graph-model" and "node" not in document["modelTopology"]:
        raise SystemFailure("graph model topology has no nodes")

    files: list[OutputFile] = []
    seen: set[str] = set()
    for group in manifest:
        paths, weights = group.get("paths"), group.get("weights")
        if not isinstance(paths, list) or not isinstance(weights, list):
            raise SystemFailure("weightsManifest group without paths or weights")
        group_bytes = 0
        for name in paths:
            if not isinstance(name, str) or not SAFE_FILE_NAME.match(name) or name == "model.json" or name in seen:
                raise SystemFailure(f"unsafe or repeated weight path {name!r}")
            local = output_dir / name
            if not local.is_file() or local.is_symlink():
                raise SystemFailure(f"weight file {name} is missing")
            seen.add(name)
            size = local.stat().st_size
            group_bytes += size
            files.append(OutputFile(name, size, _digest(local), local))
        expected = [weight_nbytes(spec) for spec in weights]
        if None not in expected and sum(expected) != group_bytes:
            raise SystemFailure(f"weight files hold {group_bytes} bytes, the manifest declares {sum(expected)}")
    return document, files


@dataclass(frozen=True)
class Published:
    model_json_key: str
    model_json_sha256: str
    blobs: list[dict]  # [{"sha256", "size"}] in manifest order


def store(output_dir: Path, output_format: str, model_json_key: str, depth: int) -> Published:
    """Validate a converter output directory and publish it: each weight file
    becomes a content-addressed blob (stored once, whoever else has it), and
    model.json, stored last at ``model_json_key``, points at the blobs
    relative to where it is served (``depth`` directories below the model's
    /m/{owner}/{name}/ URL, so that /blobs/ is ``../`` * depth)."""
    document, files = validate_output(output_dir, output_format)
    sha_by_path = {item.path: item.sha256 for item in files}
    up = "../" * depth
    for group in document["weightsManifest"]:
        group["paths"] = [f"{up}blobs/{sha_by_path[path]}" for path in group["paths"]]
    for item in files:
        key = storage.blob_key(item.sha256)
        if not storage.blob_exists(key):
            with item.local.open("rb") as handle:
                storage.put_blob(key, handle)
    body = json.dumps(document, separators=(",", ":")).encode()
    storage.put_blob(model_json_key, io.BytesIO(body))
    return Published(model_json_key, hashlib.sha256(body).hexdigest(), [item.as_blob() for item in files])

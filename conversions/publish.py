"""Publish what the sandbox wrote, after checking it.

The converter ran on untrusted input, so its output is untrusted too. Files
are opened without following links the sandbox may have planted; model.json
goes through the one validator (converter/modeljson.py); each weight file is
copied into the worker's own private directory while it is hashed, and that
copy, which nothing in the sandbox can reach, is what gets stored, so the
bytes stored are the bytes hashed. An existing blob is reused only if its
size and sha256 check out.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from conversions.sandbox import open_inside
from converter import companions, modeljson
from converter.errors import ConversionError
from converter.formats import GRAPH_MODEL
from registry import storage

MAX_WEIGHT_BYTES = 16 * 1024**3


@dataclass(frozen=True)
class OutputFile:
    path: str
    size: int
    sha256: str
    copy: Path

    def as_blob(self) -> dict:
        return {"sha256": self.sha256, "size": self.size}


def _private_copy(job_dir: Path, relative: str, target_dir: Path, budget: list[int]) -> OutputFile:
    source = open_inside(job_dir, relative)
    if source is None:
        raise ConversionError(f"The converter did not write the weight file {relative.rsplit('/', 1)[-1]}.")
    digest = hashlib.sha256()
    size = 0
    with source, tempfile.NamedTemporaryFile(dir=target_dir, delete=False) as copy:
        while chunk := source.read(1024 * 1024):
            size += len(chunk)
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise ConversionError("The converted weights are larger than allowed.")
            digest.update(chunk)
            copy.write(chunk)
    return OutputFile(relative.rsplit("/", 1)[-1], size, digest.hexdigest(), Path(copy.name))


def read_output(job_dir: Path, output: str, output_format: str, private_dir: Path) -> tuple[dict, list[OutputFile]]:
    """The validated model.json of ``job_dir/output`` and private copies of its weight files."""
    handle = open_inside(job_dir, f"{output}/model.json")
    if handle is None:
        raise ConversionError("The converter wrote no model.json.")
    with handle:
        raw = handle.read(modeljson.MAX_MODEL_JSON_BYTES + 1)
    document = modeljson.parse(raw, flat=True)
    if output_format == GRAPH_MODEL and not modeljson.is_graph_model(document):
        raise ConversionError("The converted graph model has no nodes.")
    files: list[OutputFile] = []
    budget = [MAX_WEIGHT_BYTES]
    for group in document["weightsManifest"]:
        copies = [_private_copy(job_dir, f"{output}/{name}", private_dir, budget) for name in group["paths"]]
        modeljson.check_group_bytes(group, sum(item.size for item in copies))
        files.extend(copies)
    return document, files


@dataclass(frozen=True)
class Published:
    model_json_key: str
    model_json_sha256: str
    blobs: list[dict]  # [{"sha256", "size"}] in manifest order


def store(job_dir: Path, output: str, output_format: str, model_json_key: str, depth: int) -> Published:
    """Validate a converter output directory and publish it: each weight file
    becomes a content-addressed blob (stored once, whoever else has it), and
    model.json, stored last at ``model_json_key``, points at the blobs
    relative to where it is served (``depth`` directories below the model's
    /m/{owner}/{name}/ URL, so that /blobs/ is ``../`` * depth)."""
    settings.PUBLISH_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=settings.PUBLISH_DIR) as private:
        document, files = read_output(job_dir, output, output_format, Path(private))
        sha_by_path = {item.path: item.sha256 for item in files}
        up = "../" * depth
        for group in document["weightsManifest"]:
            group["paths"] = [f"{up}blobs/{sha_by_path[path]}" for path in group["paths"]]
        modeljson.add_integrity(document)
        for item in files:
            key = storage.blob_key(item.sha256)
            if not storage.blob_matches(key, item.size, item.sha256):
                storage.put_blob_file(key, item.copy, item.sha256)
    body = json.dumps(document, separators=(",", ":")).encode()
    storage.put_blob(model_json_key, io.BytesIO(body))
    return Published(model_json_key, hashlib.sha256(body).hexdigest(), [item.as_blob() for item in files])


def store_companions(job_dir: Path, names: list[str], prefix: str) -> list[dict]:
    """Publish the companion files the sandbox checked, at ``prefix/files/``:
    names and sizes checked again here, bytes stored as read (once, without
    following links), the content type decided by the name, never by the
    sandbox."""
    stored, total = [], 0
    for name in names:
        if refusal := companions.name_refusal(name):
            raise ConversionError(f"Companion files: {refusal}")
        handle = open_inside(job_dir, f"{companions.OUTPUT_DIR}/{name}")
        if handle is None:
            raise ConversionError(f"The converter did not write the companion file {name}.")
        with handle:
            data = handle.read(companions.MAX_BYTES + 1)
        total += len(data)
        if len(data) > companions.MAX_BYTES or total > companions.MAX_TOTAL_BYTES:
            raise ConversionError("The companion files are larger than allowed.")
        companions.check_content(name, data)
        key = f"{prefix}/files/{name}"
        storage.put_blob(key, io.BytesIO(data))
        stored.append(
            {
                "name": name,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "content_type": companions.content_type(name),
                "key": key,
            }
        )
    return stored

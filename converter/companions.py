"""Companion files: the small text files a model travels with.

A Teachable Machine export has ``metadata.json`` (its labels) beside
model.json, ml5 reads ``model_meta.json``, text models bring a vocabulary
or a tokenizer. Modelport keeps them and serves them beside model.json
(``/m/{owner}/{name}/{ref}/{file}``), so loaders that look for them next to
the model find them.

They come from the folder that holds a TF.js model.json (or a SavedModel),
or are sent with any upload in the ``companions`` field. Only plain names
with a text or JSON extension, a bounded count and size; JSON must parse
and text must be UTF-8. The names, types and limits here are shared by the
sandbox, which validates the content, and the worker and API, which check
names and sizes again before anything is stored or served (never with a
content type a browser would run).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from converter.errors import ConversionError

MAX_COUNT = 16
MAX_BYTES = 4 * 1024 * 1024
MAX_TOTAL_BYTES = 16 * 1024 * 1024
CONTENT_TYPES = {
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(?:" + "|".join(CONTENT_TYPES) + r")\Z")
RESERVED = {"model.json"}
# Files of the model formats themselves, never companions.
MODEL_FILES = {"saved_model.pb", "saved_model.pbtxt", "keras_metadata.pb", "fingerprint.pb"}
# Where the sandbox leaves the companions it checked, inside the job directory.
OUTPUT_DIR = "companions"


def content_type(name: str) -> str:
    return CONTENT_TYPES[name.rsplit(".", 1)[-1]]


def name_refusal(name: str) -> str:
    """Why ``name`` cannot be a companion ('' if it can)."""
    if name in RESERVED:
        return f"{name} is the model itself."
    if not NAME.match(name):
        kinds = ", ".join(f".{ext}" for ext in CONTENT_TYPES)
        return f"{name[:120]!r} is not a companion file: a plain file name ending in {kinds}."
    return ""


def check_content(name: str, data: bytes) -> None:
    """JSON that parses, or UTF-8 text without NUL bytes."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConversionError(f"The companion file {name} is not UTF-8 text.") from None
    if "\x00" in text:
        raise ConversionError(f"The companion file {name} contains NUL bytes: it is not text.")
    if name.endswith(".json"):
        try:
            json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ConversionError(f"The companion file {name} is not valid JSON: {str(exc)[:200]}.") from None


def candidates(model_dir: Path, model_files: set[str]) -> list[Path]:
    """Top-level files beside the model that are not part of it."""
    return sorted(
        path
        for path in model_dir.iterdir()
        if path.is_file() and not path.is_symlink() and path.name not in model_files | MODEL_FILES
    )


def collect(found: list[Path], sent: list[Path], workdir: Path) -> dict:
    """Check companions found beside the model and sent with the upload and
    copy them to ``workdir/companions``. Files found beside the model that
    are not companions are skipped (and reported); a companion that breaks
    the rules fails the conversion, as does anything wrong with one sent."""
    kept: dict[str, Path] = {}
    skipped = []
    for path in found:
        if refusal := name_refusal(path.name):
            skipped.append({"name": path.name[:120], "reason": refusal})
        else:
            kept[path.name] = path
    for path in sent:
        if refusal := name_refusal(path.name):
            raise ConversionError(f"Companion files: {refusal}")
        kept[path.name] = path  # sent with the request: it wins over a file of the same name in the archive
    if len(kept) > MAX_COUNT:
        raise ConversionError(f"A model can have at most {MAX_COUNT} companion files; this upload has {len(kept)}.")
    total = 0
    target = workdir / OUTPUT_DIR
    target.mkdir()
    for name, path in sorted(kept.items()):
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConversionError(f"The companion file {name} is larger than {MAX_BYTES // 1024**2} MiB.")
        total += size
        if total > MAX_TOTAL_BYTES:
            raise ConversionError(f"The companion files are larger than {MAX_TOTAL_BYTES // 1024**2} MiB together.")
        check_content(name, path.read_bytes())
        shutil.copyfile(path, target / name, follow_symlinks=False)
    return {"companions": sorted(kept), "skipped_files": skipped}

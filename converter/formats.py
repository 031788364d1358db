"""What kind of model an upload is, from its content, not its name; the
formats Modelport reads and writes.

``detect_file`` and ``detect_tree`` open archives, so it runs only inside the sandbox. The
web process calls ``sniff``, which reads a few magic bytes and nothing more.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO

from converter.archive import find_dir_with
from converter.errors import ConversionError

KERAS_H5 = "keras-h5"
KERAS_V3 = "keras-v3"
SAVED_MODEL = "saved-model"
KERAS_SAVED_MODEL = "keras-saved-model"
TFJS = "tfjs"
INPUT_FORMATS = (KERAS_H5, KERAS_V3, SAVED_MODEL, KERAS_SAVED_MODEL, TFJS)
ARCHIVE_FORMATS = (SAVED_MODEL, KERAS_SAVED_MODEL, TFJS)
ARCHIVE = "archive"  # not yet known which of ARCHIVE_FORMATS
# Keras picks its loader by file extension.
UPLOAD_SUFFIXES = {KERAS_H5: ".h5", KERAS_V3: ".keras"}
LAYERS_MODEL = "layers-model"
GRAPH_MODEL = "graph-model"
OUTPUT_FORMATS = (LAYERS_MODEL, GRAPH_MODEL)
QUANTIZATIONS = ("float16", "uint8", "uint16")
# A graph model of a Keras upload served as a layers model (often faster for inference).
GRAPH_VARIANT = "graph"
VARIANTS = (*QUANTIZATIONS, GRAPH_VARIANT)
# TF.js backends each ready version is run on in headless Chromium (converter/browsers.py).
BROWSER_BACKENDS = ("wasm", "webgl")

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

NOT_A_MODEL = (
    "The file is not a model Modelport recognises. Upload a Keras model (.h5 or .keras) "
    "or a TensorFlow SavedModel directory packed as .zip or .tar.gz."
)
NO_SAVED_MODEL = (
    "The archive contains no saved_model.pb (nor a TF.js model.json). Pack the SavedModel directory itself "
    "(the folder with saved_model.pb and variables/)."
)


SNIFF_BYTES = 512
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
COMPRESSED_SIGNATURES = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def sniff(fileobj: IO[bytes]) -> None:
    """Refuse, in words, an upload that cannot be a model, from its first
    512 bytes only: an HDF5 file, a zip, a (compressed) tar. Whether it
    holds a model is for the sandbox to find out."""
    fileobj.seek(0)
    head = fileobj.read(SNIFF_BYTES)
    fileobj.seek(0)
    if not head:
        raise ConversionError("The uploaded file is empty.")
    if head.startswith((HDF5_SIGNATURE, *ZIP_SIGNATURES, *COMPRESSED_SIGNATURES)):
        return
    if len(head) >= 262 and head[257:262] == b"ustar":
        return
    raise ConversionError(NOT_A_MODEL)


def detect_file(path: Path) -> str:
    """KERAS_H5, KERAS_V3, or ARCHIVE for any other archive (a SavedModel or
    TF.js model: which one is known once it is unpacked, see detect_tree)."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if not head:
        raise ConversionError("The uploaded file is empty.")
    if head == HDF5_SIGNATURE:
        return KERAS_H5
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ConversionError(f"The zip archive is damaged: {exc}.") from None
        top_level = {name.strip("/") for name in names if "/" not in name.strip("/")}
        if {"config.json", "model.weights.h5"} <= top_level:
            return KERAS_V3
    return ARCHIVE


def detect_tree(root: Path) -> tuple[str, Path]:
    """The format of an unpacked archive and the directory holding the model."""
    saved_model = find_dir_with(root, "saved_model.pb")
    if saved_model is not None:
        keras = (saved_model / "keras_metadata.pb").is_file()
        return (KERAS_SAVED_MODEL if keras else SAVED_MODEL), saved_model
    tfjs = find_dir_with(root, "model.json")
    if tfjs is not None:
        return TFJS, tfjs
    raise ConversionError(NO_SAVED_MODEL)


def model_dir(root: Path, input_format: str) -> Path:
    """The directory of an unpacked archive that holds a model of ``input_format``."""
    wanted = "model.json" if input_format == TFJS else "saved_model.pb"
    found = find_dir_with(root, wanted)
    if found is None:
        raise ConversionError(f"The archive contains no {wanted}.")
    return found

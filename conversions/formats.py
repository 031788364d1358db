"""Detect what kind of model an upload is, from its content, not its name.

Importable without Django: the sandboxed converter uses it too.
"""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import PurePosixPath
from typing import IO

from conversions.errors import ConversionError

KERAS_H5 = "keras-h5"
KERAS_V3 = "keras-v3"
SAVED_MODEL = "saved-model"
KERAS_SAVED_MODEL = "keras-saved-model"
TFJS = "tfjs"
INPUT_FORMATS = (KERAS_H5, KERAS_V3, SAVED_MODEL, KERAS_SAVED_MODEL, TFJS)
ARCHIVE_FORMATS = (SAVED_MODEL, KERAS_SAVED_MODEL, TFJS)

# model.json is read whole; a larger one is refused (uploaded or converted).
MAX_MODEL_JSON_BYTES = 64 * 1024 * 1024

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

NOT_A_MODEL = (
    "The file is not a model Modelport recognises. Upload a Keras model (.h5 or .keras) "
    "or a TensorFlow SavedModel directory packed as .zip or .tar.gz."
)
NO_SAVED_MODEL = (
    "The archive contains no saved_model.pb (nor a TF.js model.json). Pack the SavedModel directory itself "
    "(the folder with saved_model.pb and variables/)."
)


def archive_names(fileobj: IO[bytes]) -> list[str] | None:
    """Member names of a zip or tar archive, or None if it is neither."""
    try:
        fileobj.seek(0)
        if zipfile.is_zipfile(fileobj):
            fileobj.seek(0)
            try:
                with zipfile.ZipFile(fileobj) as archive:
                    return archive.namelist()
            except zipfile.BadZipFile as exc:
                raise ConversionError(f"The zip archive is damaged: {exc}.") from None
        fileobj.seek(0)
        try:
            with tarfile.open(fileobj=fileobj, mode="r:*") as archive:
                return archive.getnames()
        except (tarfile.TarError, EOFError, OSError):
            return None
    finally:
        fileobj.seek(0)


def detect_format(fileobj: IO[bytes]) -> str:
    """Return one of INPUT_FORMATS or raise ConversionError in words."""
    fileobj.seek(0)
    head = fileobj.read(8)
    fileobj.seek(0)
    if not head:
        raise ConversionError("The uploaded file is empty.")
    if head == HDF5_SIGNATURE:
        return KERAS_H5
    names = archive_names(fileobj)
    if names is None:
        raise ConversionError(NOT_A_MODEL)
    basenames = {PurePosixPath(name).name for name in names}
    top_level = {name.strip("/") for name in names if "/" not in name.strip("/")}
    if {"config.json", "model.weights.h5"} <= top_level:
        return KERAS_V3
    if "saved_model.pb" in basenames:
        return KERAS_SAVED_MODEL if "keras_metadata.pb" in basenames else SAVED_MODEL
    if "model.json" in basenames:
        return TFJS
    raise ConversionError(NO_SAVED_MODEL)

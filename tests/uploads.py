"""Small upload payloads for API tests that never reach a converter."""

from __future__ import annotations

import io
import tarfile
import zipfile

from django.core.files.uploadedfile import SimpleUploadedFile

HDF5_HEADER = b"\x89HDF\r\n\x1a\n"


def h5_like(name: str = "model.h5") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, HDF5_HEADER + b"\0" * 512, content_type="application/octet-stream")


def zip_of(members: dict[str, bytes], name: str = "model.zip") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="application/zip")


def tar_bytes(add) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        add(archive)
    return buffer.getvalue()

"""Unpack untrusted archives without letting them escape or explode.

Every member is checked before anything is written: no absolute paths, no
``..``, only regular files and directories (no links, devices or fifos),
bounded member count, declared size and compression ratio; while writing,
a byte counter stops archives that lie about their sizes.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from conversions.errors import ConversionError


@dataclass(frozen=True)
class Limits:
    max_members: int = 10_000
    max_total_bytes: int = 8 * 1024**3
    max_ratio: int = 200


def _safe_relative(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ConversionError(
            f"The archive member {name!r} has an absolute path; archives must hold relative paths only."
        )
    if any(part == ".." for part in path.parts):
        raise ConversionError(f"The archive member {name!r} points outside the archive ('..'); it was refused.")
    return path


def _copy_limited(source: IO[bytes], target: Path, budget: list[int]) -> None:
    with target.open("wb") as out:
        while chunk := source.read(1024 * 1024):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise ConversionError("The archive unpacks to more than the allowed size; it was refused.")
            out.write(chunk)


def extract(archive_path: Path, destination: Path, limits: Limits = Limits()) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    compressed_size = max(archive_path.stat().st_size, 1)
    if zipfile.is_zipfile(archive_path):
        _extract_zip(archive_path, destination, limits, compressed_size)
    else:
        _extract_tar(archive_path, destination, limits, compressed_size)


def _check_totals(count: int, declared: int, compressed_size: int, limits: Limits) -> None:
    if count > limits.max_members:
        raise ConversionError(f"The archive has {count} members; at most {limits.max_members} are allowed.")
    if declared > limits.max_total_bytes:
        raise ConversionError(f"The archive unpacks to {declared} bytes; at most {limits.max_total_bytes} are allowed.")
    if declared > compressed_size * limits.max_ratio and declared > 64 * 1024 * 1024:
        raise ConversionError("The archive's compression ratio is suspiciously high (a zip bomb?); it was refused.")


def _extract_zip(archive_path: Path, destination: Path, limits: Limits, compressed_size: int) -> None:
    with zipfile.ZipFile(archive_path) as archive:
        members = archive.infolist()
        _check_totals(len(members), sum(m.file_size for m in members), compressed_size, limits)
        budget = [limits.max_total_bytes]
        for member in members:
            relative = _safe_relative(member.filename)
            mode = member.external_attr >> 16
            if mode and (mode & 0o170000) not in (0, 0o100000, 0o040000):
                raise ConversionError(
                    f"The archive member {member.filename!r} is a link or special file; it was refused."
                )
            target = destination.joinpath(*relative.parts)
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source:
                _copy_limited(source, target, budget)


def _extract_tar(archive_path: Path, destination: Path, limits: Limits, compressed_size: int) -> None:
    try:
        with tarfile.open(archive_path, mode="r:*") as archive:
            members = archive.getmembers()
            _check_totals(len(members), sum(m.size for m in members), compressed_size, limits)
            budget = [limits.max_total_bytes]
            for member in members:
                relative = _safe_relative(member.name)
                if not (member.isfile() or member.isdir()):
                    raise ConversionError(
                        f"The archive member {member.name!r} is a link or special file; it was refused."
                    )
                target = destination.joinpath(*relative.parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                if source is None:
                    raise ConversionError(f"The archive member {member.name!r} cannot be read.")
                with source:
                    _copy_limited(source, target, budget)
    except (tarfile.TarError, EOFError) as exc:
        raise ConversionError(f"The archive is damaged: {exc}.") from None


def find_saved_model_dir(root: Path) -> Path:
    """The directory holding saved_model.pb, the shallowest one."""
    return find_dir_with(root, "saved_model.pb")


def find_dir_with(root: Path, filename: str) -> Path:
    """The shallowest directory under ``root`` holding ``filename``."""
    candidates = sorted(p.parent for p in root.rglob(filename) if p.is_file())
    if not candidates:
        raise ConversionError(f"The archive contains no {filename}.")
    return min(candidates, key=lambda p: len(p.parts))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

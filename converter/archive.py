"""Unpack untrusted archives without letting them escape or explode.

Runs inside the sandbox. Every member is checked before it is written: a
relative path without ``..``, NUL or over-long names, no duplicate and no
path that is a file and a directory at once, only regular files and
directories (no links, devices or fifos), a bounded member count and
declared size and compression ratio. While writing, a byte counter stops
archives that lie about their sizes and a CPU-time budget stops
decompression bombs that are slow rather than big. Tar archives are read
as a stream, so a huge member is refused at its header, before anything is
decompressed.
"""

from __future__ import annotations

import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from converter.errors import ConversionError

MAX_NAME_BYTES = 1024
MAX_COMPONENT_BYTES = 255


@dataclass(frozen=True)
class Limits:
    max_members: int = 10_000
    max_total_bytes: int = 8 * 1024**3
    max_ratio: int = 200
    cpu_seconds: float = 120.0


@dataclass
class _Budget:
    limits: Limits
    compressed_size: int
    members: int = 0
    declared: int = 0
    written: int = 0
    files: set[str] = field(default_factory=set)
    directories: set[str] = field(default_factory=set)
    implied: set[str] = field(default_factory=set)  # directories only seen as parents so far
    started: float = field(default_factory=time.process_time)

    def spend(self, nbytes: int) -> None:
        self.written += nbytes
        if self.written > self.limits.max_total_bytes:
            raise ConversionError(
                f"The archive unpacks to more than {self.limits.max_total_bytes} bytes; it was refused."
            )
        if self.written > 64 * 1024**2 and self.written > self.compressed_size * self.limits.max_ratio:
            raise ConversionError("The archive's compression ratio is suspiciously high (a zip bomb?); it was refused.")
        if time.process_time() - self.started > self.limits.cpu_seconds:
            raise ConversionError(
                f"Unpacking the archive took more than {self.limits.cpu_seconds:g} s of CPU time; it was refused."
            )

    def declare(self, name: str, size: int, is_dir: bool) -> PurePosixPath:
        """Check one member's name and declared size before anything of it is written."""
        self.members += 1
        if self.members > self.limits.max_members:
            raise ConversionError(f"The archive has more than {self.limits.max_members} members; it was refused.")
        path = safe_relative(name)
        if size > self.limits.max_total_bytes:
            raise ConversionError(
                f"The archive member {name!r} declares {size} bytes; at most {self.limits.max_total_bytes} are allowed."
            )
        self.declared += size
        if self.declared > 64 * 1024**2 and self.declared > self.compressed_size * self.limits.max_ratio:
            raise ConversionError("The archive's compression ratio is suspiciously high (a zip bomb?); it was refused.")
        key = path.as_posix()
        parents = [p.as_posix() for p in path.parents if p.as_posix() != "."]
        if key in self.files or (is_dir and key in self.directories and key not in self.implied):
            raise ConversionError(f"The archive holds {name!r} twice; it was refused.")
        clash = next((parent for parent in parents if parent in self.files), None)
        if clash is not None or (not is_dir and key in self.directories):
            raise ConversionError(
                f"The archive holds {clash or key!r} both as a file and as a directory; it was refused."
            )
        (self.directories if is_dir else self.files).add(key)
        self.implied.discard(key)
        self.implied.update(parent for parent in parents if parent not in self.directories)
        self.directories.update(parents)
        return path


def safe_relative(name: str) -> PurePosixPath:
    if "\x00" in name:
        raise ConversionError(f"The archive member {name!r} has a NUL character in its name; it was refused.")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise ConversionError(f"An archive member's name is longer than {MAX_NAME_BYTES} bytes; it was refused.")
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ConversionError(
            f"The archive member {name!r} has an absolute path; archives must hold relative paths only."
        )
    if any(part == ".." for part in path.parts):
        raise ConversionError(f"The archive member {name!r} points outside the archive ('..'); it was refused.")
    if any(len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES for part in path.parts):
        raise ConversionError(f"The archive member {name[:80]!r}… has an over-long name; it was refused.")
    if not path.parts:
        raise ConversionError(f"The archive member {name!r} has no name; it was refused.")
    return path


def _copy_limited(source: IO[bytes], target: Path, budget: _Budget) -> None:
    with target.open("xb") as out:
        while chunk := source.read(1024 * 1024):
            budget.spend(len(chunk))
            out.write(chunk)


def extract(archive_path: Path, destination: Path, limits: Limits = Limits()) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    budget = _Budget(limits, max(archive_path.stat().st_size, 1))
    try:
        if zipfile.is_zipfile(archive_path):
            _extract_zip(archive_path, destination, budget)
        else:
            _extract_tar(archive_path, destination, budget)
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, ValueError) as exc:
        if isinstance(exc, ConversionError):
            raise
        raise ConversionError(f"The archive is damaged or malformed: {str(exc)[:200]}.") from None


def _extract_zip(archive_path: Path, destination: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive_path) as archive:
        members = archive.infolist()
        # Every name and declared size is checked before anything is written.
        checked = []
        for member in members:
            mode = member.external_attr >> 16
            if mode and (mode & 0o170000) not in (0, 0o100000, 0o040000):
                raise ConversionError(
                    f"The archive member {member.filename!r} is a link or special file; it was refused."
                )
            checked.append((member, budget.declare(member.filename, member.file_size, member.is_dir())))
        for member, relative in checked:
            target = destination.joinpath(*relative.parts)
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source:
                _copy_limited(source, target, budget)


def _extract_tar(archive_path: Path, destination: Path, budget: _Budget) -> None:
    # A stream ("r|*"): members are checked one header at a time, as they come.
    with archive_path.open("rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as archive:
        for member in archive:
            if not (member.isfile() or member.isdir()):
                raise ConversionError(f"The archive member {member.name!r} is a link or special file; it was refused.")
            relative = budget.declare(member.name, member.size, member.isdir())
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
            budget.spend(0)


def find_dir_with(root: Path, filename: str) -> Path | None:
    """The shallowest directory under ``root`` holding ``filename``."""
    candidates = sorted(p.parent for p in root.rglob(filename) if p.is_file() and not p.is_symlink())
    if not candidates:
        return None
    return min(candidates, key=lambda p: len(p.parts))

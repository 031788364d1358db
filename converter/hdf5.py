"""Refuse HDF5 files whose data lives anywhere but in the file itself.

An HDF5 dataset can be *external* (its bytes read from other files named in
the dataset, ``external=[(path, offset, size)]``), *virtual* (stitched from
datasets of other files), or reached through an external link; h5py,
tf-keras and tensorflowjs all follow them and would publish the server's
files as weights. Keras never writes any of these, so every path that
opens an .h5 calls :func:`check_self_contained` first.
"""

from __future__ import annotations

from pathlib import Path

from converter.errors import ConversionError

MAX_OBJECTS = 200_000


def check_self_contained(path: Path, what: str = "The HDF5 file") -> None:
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except OSError:
        raise ConversionError(f"{what} cannot be read as HDF5.") from None
    with h5:
        _check_group(h5, what, [0])


def _check_group(group, what: str, count: list[int]) -> None:
    import h5py

    for name in group:
        count[0] += 1
        if count[0] > MAX_OBJECTS:
            raise ConversionError(f"{what} holds more than {MAX_OBJECTS} objects; it was refused.")
        link = group.get(name, getlink=True)
        where = f"{group.name.rstrip('/')}/{name}"
        if isinstance(link, h5py.ExternalLink):
            raise ConversionError(f"{what} links '{where}' to another file ({link.filename!r}); it was refused.")
        if isinstance(link, h5py.SoftLink):
            raise ConversionError(f"{what} holds a soft link at '{where}'; Keras never writes one, so it was refused.")
        item = group.get(name)
        if isinstance(item, h5py.Dataset):
            if item.is_virtual:
                raise ConversionError(
                    f"{what} holds a virtual dataset '{where}' that reads other files; it was refused."
                )
            if item.id.get_create_plist().get_external_count() > 0:
                raise ConversionError(
                    f"{what} holds an external dataset '{where}' whose bytes come from other files; it was refused."
                )
        elif isinstance(item, h5py.Group):
            _check_group(item, what, count)

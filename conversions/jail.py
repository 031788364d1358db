"""Enter the converter's jail, then exec the given command without privileges.

Run as ``unshare --net --pid --fork --mount-proc python -m conversions.jail
SCRATCH HIDDEN_PATHS_JSON -- COMMAND...`` (root, inside fresh namespaces;
unshare makes the mount namespace private, so nothing here reaches the host).

1. Every hidden path (the server's data directory, database and broker data,
   credentials) is covered by an empty read-only tmpfs; the scratch
   directory is bound back into place if a hidden path contained it.
2. The command is exec'd through ``setpriv`` with an empty capability
   bounding set and no_new_privs, so it cannot unmount what hides the
   secrets, mount anything, or gain privileges back.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sys
from pathlib import Path

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_BIND = 4096
MS_REC = 16384

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    result = _libc.mount(
        source.encode(), target.encode(), fstype.encode() if fstype else None, flags, data.encode() if data else None
    )
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def hide(paths: list[Path], scratch: Path) -> None:
    keep = os.open(scratch, os.O_PATH | os.O_DIRECTORY)
    for path in paths:
        if not path.is_dir():
            continue
        _mount("tmpfs", str(path), "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
        if scratch.is_relative_to(path) and scratch != path:
            scratch.mkdir(parents=True, exist_ok=True)
            _mount(f"/proc/self/fd/{keep}", str(scratch), None, MS_BIND | MS_REC)
    os.close(keep)


def main(argv: list[str]) -> None:
    scratch = Path(argv[1]).resolve()
    hidden = [Path(p).resolve() for p in json.loads(argv[2])]
    command = argv[argv.index("--") + 1 :]
    hide(hidden, scratch)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise SystemExit("setpriv (util-linux) is required for the converter jail")
    os.execv(
        setpriv,
        [setpriv, "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", *command],
    )


if __name__ == "__main__":
    main(sys.argv)

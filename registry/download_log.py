"""Download counts from the nginx front's log (deploy/nginx.conf).

The front answers numbered model.json URLs from its cache, so the app never
sees those loads. It writes one line per model.json it answers, cached or
not (``log_format modelport_downloads '$msec $status $uri'``: a time, a
status and a path, no address), and ``manage.py downloads_from_log`` adds
them to the counts: a 200 or 304 of a version's model.json (through any
alias, variant or cut) is one load of that version, as when the app counts.

Where it stopped is kept in a state file (by default ``<log>.offset``: the
file's inode and the byte offset), so a restart neither loses nor repeats
lines, and a rotated log (a new inode, or a shorter file) is read from its
start.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from registry import downloads
from registry.models import Model

LINE = re.compile(
    r"^(?P<msec>\d+(?:\.\d+)?) (?P<status>\d{3}) /m/(?P<owner>[^/ ]+)/(?P<name>[^/ ]+)/(?P<ref>[^/ ]+)/\S*model\.json$"
)
COUNTED = {"200", "304"}
MAX_BATCH_BYTES = 8 * 1024 * 1024


def default_state(log: Path) -> Path:
    return log.with_name(log.name + ".offset")


def _start(stat: os.stat_result, state_path: Path) -> int:
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        return 0
    if state.get("inode") != stat.st_ino or state.get("offset", 0) > stat.st_size:
        return 0  # rotated: a new file
    return int(state["offset"])


def ingest(log: Path, state_path: Path | None = None) -> int:
    """Add the loads logged since the last call; returns how many were added."""
    state_path = state_path or default_state(log)
    try:
        stat = log.stat()
    except FileNotFoundError:
        return 0
    offset = _start(stat, state_path)
    added = 0
    with log.open("rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(MAX_BATCH_BYTES):
            complete = chunk.rfind(b"\n") + 1
            if not complete:  # a line still being written
                break
            added += _add(chunk[:complete].decode("utf-8", "replace").splitlines())
            offset += complete
            handle.seek(offset)
    state_path.write_text(json.dumps({"inode": stat.st_ino, "offset": offset}))
    return added


def _add(lines: list[str]) -> int:
    loads: Counter[tuple[str, str, str, str]] = Counter()
    for line in lines:
        match = LINE.match(line.strip())
        if match and match["status"] in COUNTED:
            day = datetime.fromtimestamp(float(match["msec"]), UTC).date().isoformat()
            loads[(match["owner"], match["name"], match["ref"], day)] += 1
    batch: Counter = Counter()
    models: dict[tuple[str, str], Model | None] = {}
    for (owner, name, ref, day), n in loads.items():
        if (owner, name) not in models:
            models[(owner, name)] = Model.objects.filter(owner__username=owner, name=name).first()
        model = models[(owner, name)]
        version = model.version_at(ref) if model is not None else None
        if version is not None:
            batch[(version.pk, datetime.fromisoformat(day).date())] += n
    return downloads.add(dict(batch))

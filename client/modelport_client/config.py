"""Where the CLI finds the registry and its token: MODELPORT_URL and
MODELPORT_TOKEN, else the file ``modelport login`` writes (mode 0600)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "modelport" / "config.json"


def load() -> dict:
    stored = {}
    path = config_path()
    if path.is_file():
        stored = json.loads(path.read_text())
    return {
        "url": os.environ.get("MODELPORT_URL") or stored.get("url") or "http://127.0.0.1:8000",
        "token": os.environ.get("MODELPORT_TOKEN") or stored.get("token"),
    }


def save(url: str, token: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"url": url.rstrip("/"), "token": token}, handle)
    path.chmod(0o600)
    return path

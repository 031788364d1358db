"""The converter's process cannot see the server's secrets or the network."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conversions import sandbox

PROBE = r"""
import json, os, socket, subprocess
found = {}
found["env"] = sorted(os.environ)
found["processes"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
found["other_environs"] = []
for pid in found["processes"]:
    try:
        found["other_environs"].append(open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"))
    except OSError:
        pass
def readable(path):
    try:
        return open(path, "rb").read().decode(errors="replace")
    except OSError as exc:
        return None
found["db"] = readable(os.environ["PROBE_DB"])
found["stored_blob"] = readable(os.environ["PROBE_BLOB"])
found["scratch_write"] = bool(open(os.path.join(os.environ["PROBE_SCRATCH"], "w"), "w").write("ok"))
connections = {}
for port in (5432, 6379, 8000):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        connections[port] = "connected"
    except OSError as exc:
        connections[port] = type(exc).__name__
found["connections"] = connections
found["umount"] = subprocess.run(["umount", os.environ["PROBE_VAR"]], capture_output=True).returncode
print(json.dumps(found))
"""


@pytest.fixture
def server_files(settings, tmp_path, model_storage):
    """A server data directory with a database file, and a stored blob."""
    var = tmp_path / "var"
    (var / "scratch").mkdir(parents=True)
    (var / "db.sqlite3").write_text("users and tokens")
    model_storage.mkdir(parents=True, exist_ok=True)
    (model_storage / "blob.bin").write_text("someone else's model")
    settings.VAR_DIR = var
    return var


@pytest.mark.skipif(not sandbox.namespace_prefix(), reason="needs namespaces (root + util-linux unshare)")
def test_converter_process_sees_no_secrets_no_data_and_no_network(server_files, model_storage, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "the-server-secret")
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", "the-s3-secret")
    scratch = server_files / "scratch"
    env = {
        **sandbox.clean_environment(scratch),
        "PROBE_DB": str(server_files / "db.sqlite3"),
        "PROBE_BLOB": str(model_storage / "blob.bin"),
        "PROBE_SCRATCH": str(scratch),
        "PROBE_VAR": str(server_files),
    }
    unjailed = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(unjailed.stdout)["db"] == "users and tokens"  # the probe does see files when not jailed

    command = sandbox.jail_command([sys.executable, "-c", PROBE], scratch)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)

    assert not {"SECRET_KEY", "S3_SECRET_ACCESS_KEY", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY"} & set(found["env"])
    assert all("the-server-secret" not in environ for environ in found["other_environs"])
    assert max(found["processes"]) < 10  # its own PID namespace: none of the server's processes
    assert found["db"] is None
    assert found["stored_blob"] is None
    assert found["scratch_write"] is True
    assert "connected" not in found["connections"].values()
    assert found["umount"] != 0
    assert (scratch / "w").read_text() == "ok"
    assert os.environ["SECRET_KEY"] == "the-server-secret"


def test_clean_environment_carries_nothing_from_the_server(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "x")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@h/db")
    env = sandbox.clean_environment(tmp_path)
    assert set(env) == {
        "PATH", "HOME", "TMPDIR", "PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONDONTWRITEBYTECODE",
        "TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES", "LANG", "TFDF_DISABLE_WELCOME_MESSAGE",
    }  # fmt: skip

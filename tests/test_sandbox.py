"""The converter's sandbox, probed from inside: what a hostile upload's code
could see and do if every parser check failed."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conversions import sandbox
from conversions.seccomp import bpf_file
from converter.errors import ConversionError

PROJECT_DIR = Path(__file__).resolve().parent.parent

PROBE = r"""
import ctypes, errno, json, os, resource, socket, sys
found = {"uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid(), "groups": os.getgroups()}
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
found.update({key: status[key].strip() for key in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp")})
found["env"] = sorted(os.environ)
found["processes"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
found["fds"] = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
found["hostname"] = socket.gethostname()

def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))

paths = json.loads(sys.argv[1])
found["write"] = {name: attempt(lambda p=path: open(p, "w").write("pwned")) for name, path in paths["write"].items()}
found["visible"] = {name: os.path.exists(path) for name, path in paths["hidden"].items()}
found["job_write"] = attempt(lambda: open("/job/ok", "w").write("ok"))
found["tmp_write"] = attempt(lambda: open("/tmp/ok", "w").write("ok"))
connections = {}
for port in paths["ports"]:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        connections[port] = "connected"
    except OSError as exc:
        connections[port] = type(exc).__name__
found["connections"] = connections
libc = ctypes.CDLL(None, use_errno=True)
def call(result):
    return "ok" if result == 0 else errno.errorcode.get(ctypes.get_errno(), "?")
found["mount"] = call(libc.mount(b"tmpfs", b"/job", b"tmpfs", 0, None))
found["unshare_user"] = call(libc.unshare(0x10000000))
found["unshare_net"] = call(libc.unshare(0x40000000))
found["ptrace"] = call(libc.ptrace(16, 1, None, None))  # PTRACE_ATTACH to bwrap's init
found["chmod_dev_null"] = attempt(lambda: os.chmod("/dev/null", 0o777))
found["chown"] = attempt(lambda: os.chown("/job/ok", 0, 0))
found["mknod"] = attempt(lambda: os.mknod("/job/dev", 0o600 | 0o020000, os.makedev(1, 3)))
print(json.dumps(found))
"""


def probe_command(job_dir: Path, seccomp_fd: int, *args: str) -> list[str]:
    """The sandbox's real bwrap command, running ``args`` in place of the zygote."""
    command = sandbox.bwrap_command(job_dir, seccomp_fd, sandbox.SandboxLimits.from_settings())
    assert command[-3:] == [sys.executable, "-m", "converter.zygote"]
    return [*command[:-3], *args]


def run_in_sandbox(job_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    seccomp_fd = bpf_file()
    try:
        return subprocess.run(
            probe_command(job_dir, seccomp_fd, *args),
            env={},
            capture_output=True,
            text=True,
            timeout=timeout,
            pass_fds=(seccomp_fd,),
        )
    finally:
        os.close(seccomp_fd)


@pytest.fixture
def host(tmp_path, settings):
    """What the host holds that a job must never reach: a database file, a
    stored blob, another job's scratch, canary secrets (one world-readable,
    one root-only), a live TCP service."""
    root = tmp_path / "host"
    files = {
        "database": root / "var" / "db.sqlite3",
        "stored_blob": root / "var" / "storage" / "blobs" / "sha256" / "abc",
        "other_job": root / "scratch" / "sandbox-1" / "job" / "upload",
        "world_readable_canary": root / "canary-public.txt",
        "root_only_canary": root / "canary-secret.txt",
    }
    for name, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"canary-{name}")
    os.chmod(files["root_only_canary"], 0o600)
    job_dir = root / "scratch" / "sandbox-2" / "job"
    job_dir.mkdir(parents=True)
    listener = socket.create_server(("127.0.0.1", 0))
    yield {"files": files, "job_dir": job_dir, "port": listener.getsockname()[1]}
    listener.close()


def test_probe_in_the_sandbox_sees_nothing_of_the_host_and_can_change_nothing(host, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "the-server-secret")
    site_packages = Path(sysconfig.get_paths()["purelib"])
    paths = {
        "write": {
            "project_tree": str(PROJECT_DIR / "converter" / "pwned.py"),
            "site_packages": str(site_packages / "pwned.py"),
            "etc": "/etc/pwned",
            "usr": "/usr/pwned",
            "interpreter": str(Path(sys.base_prefix) / "pwned"),
        },
        "hidden": {
            **{name: str(path) for name, path in host["files"].items()},
            "host_tmp": str(host["job_dir"].parent.parent.parent),  # under the host's /tmp
            "run": "/run/postgresql",
            "settings": str(PROJECT_DIR / "modelport" / "settings.py"),
            "var": str(PROJECT_DIR / "var"),
            "root_home": "/root/.ssh",
        },
        "ports": [5432, 6379, host["port"]],
    }
    assert all(Path(path).exists() for name, path in paths["hidden"].items() if name not in ("run", "root_home"))
    done = run_in_sandbox(host["job_dir"], sys.executable, "-c", PROBE, json.dumps(paths))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)

    assert (found["uid"], found["gid"], found["euid"]) == (65534, 65534, 65534)
    assert 0 not in found["groups"]
    assert found["CapEff"] == found["CapPrm"] == found["CapBnd"] == "0000000000000000"
    assert found["NoNewPrivs"] == "1"
    assert found["Seccomp"] == "2"  # a filter is loaded
    assert "SECRET_KEY" not in found["env"] and "DATABASE_URL" not in found["env"]
    assert found["processes"] == [1, 2]  # bwrap's init and the probe: no server process in sight
    assert found["fds"] == [0, 1, 2, 3]  # stdio and the listing itself
    assert found["hostname"] == "modelport-sandbox"
    assert set(found["write"].values()) <= {"EROFS", "EACCES", "ENOENT"}, found["write"]
    assert not any(found["visible"].values()), found["visible"]
    assert (found["job_write"], found["tmp_write"]) == ("ok", "ok")
    assert "connected" not in found["connections"].values()
    assert found["mount"] == found["unshare_user"] == found["unshare_net"] == found["ptrace"] == "EPERM"
    assert found["chmod_dev_null"] == found["chown"] == found["mknod"] == "EPERM"

    assert (host["job_dir"] / "ok").read_text() == "ok"  # the job directory is the way out
    assert stat.S_IMODE(os.stat("/dev/null").st_mode) == 0o666
    assert not (PROJECT_DIR / "converter" / "pwned.py").exists()
    assert not Path("/tmp/ok").exists()  # its /tmp was its own


JOB_PROBE = r"""
import json, os, resource, subprocess, sys, time
from converter import run, zygote

def hostile_job(workdir):
    grandchild = subprocess.Popen(["sleep", "600"], start_new_session=True)  # setsid: its own session
    open("/tmp/left-behind", "w").write("x")
    names = ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_CORE")
    limits = {name: resource.getrlimit(getattr(resource, name)) for name in names}
    fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    seen = {"grandchild": grandchild.pid, "limits": limits, "fds": fds, "sid": os.getsid(0) == os.getpid()}
    (workdir / "job.json").write_text(json.dumps(seen))

run.handle = hostile_job
job = {"workdir": "/job", "own_pid_namespace": True, "cpu_seconds": 50, "memory_bytes": 4 * 1024**3,
       "timeout_seconds": 60, "file_bytes": 1024**3, "processes": 300, "log_bytes": 1024}
reply = zygote.run_job(job)
seen = json.loads(open("/job/job.json").read())
reply["grandchild_alive"] = os.path.exists(f"/proc/{seen['grandchild']}")
reply["tmp_after"] = os.listdir("/tmp")
reply.update(seen)
print(json.dumps(reply))
"""


def test_a_job_runs_limited_with_no_inherited_files_and_nothing_it_starts_outlives_it(host):
    done = run_in_sandbox(host["job_dir"], sys.executable, "-c", JOB_PROBE)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["exit_code"] == 0
    assert reply["leftovers"] == 1  # the setsid grandchild, killed
    assert reply["grandchild_alive"] is False
    assert "left-behind" not in reply["tmp_after"]
    assert reply["fds"] == [0, 1, 2, 3]  # /dev/null, the log pipe twice, the listing: none of the zygote's
    assert reply["sid"] is True
    limits = reply["limits"]
    assert limits["RLIMIT_CPU"] == [50, 55]
    assert limits["RLIMIT_AS"] == [4 * 1024**3] * 2
    assert limits["RLIMIT_NPROC"] == [300, 300]
    assert limits["RLIMIT_FSIZE"] == [1024**3] * 2
    assert limits["RLIMIT_CORE"] == [0, 0]


@pytest.fixture
def fresh_sandbox(settings, tmp_path):
    settings.CONVERSION_SCRATCH_DIR = tmp_path / "scratch"
    created = []

    def make(isolated: bool = True) -> sandbox.Sandbox:
        created.append(sandbox.Sandbox(tmp_path / "scratch" / "sandbox-test", 100, isolated=isolated))
        return created[-1]

    yield make
    for item in created:
        item.stop()


def test_without_bubblewrap_the_sandbox_fails_closed_and_says_why(fresh_sandbox, monkeypatch, tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH with Python and Node, but no bwrap
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(sandbox.SandboxUnavailable) as failure:
        fresh_sandbox().start(sandbox.SandboxLimits.from_settings())
    assert str(failure.value) == (
        "bubblewrap (bwrap) is not installed, so the converter sandbox cannot be created "
        "(install the Debian package 'bubblewrap')."
    )


def test_when_bubblewrap_cannot_create_namespaces_the_sandbox_fails_closed(fresh_sandbox, monkeypatch, tmp_path):
    # What bwrap prints where user namespaces are forbidden (an unprivileged container).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because the kernel "
                    "does not allow non-privileged user namespaces.' >&2\nexit 1\n")  # fmt: skip
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(sandbox.SandboxUnavailable) as failure:
        fresh_sandbox().start(sandbox.SandboxLimits.from_settings())
    assert str(failure.value).startswith(
        "The converter sandbox cannot be created on this machine (bwrap: No permissions to creating new namespace"
    )


def test_a_job_over_its_scratch_space_is_stopped(fresh_sandbox):
    box = fresh_sandbox()
    limits = sandbox.SandboxLimits.from_settings()
    job_dir = box.prepare(limits)
    (job_dir / "upload").write_bytes(b"\0" * 4 * 1024**2)  # more than the limit below, as if the job wrote it
    small = sandbox.SandboxLimits(**{**limits.__dict__, "scratch_bytes": 1024**2})
    with pytest.raises(ConversionError, match=r"^The conversion wrote more than 1 MiB of files and was stopped\."):
        box.run({"format": "keras-h5", "shard_bytes": 4096}, small)
    assert box.process is None  # the whole sandbox was stopped


CRASH_PROBE = r"""
import json, os, signal
from converter import run, zygote

run.handle = lambda workdir: os.kill(os.getpid(), signal.SIGSEGV)
job = {"workdir": "/job", "own_pid_namespace": True, "cpu_seconds": 50, "memory_bytes": 4 * 1024**3,
       "timeout_seconds": 60, "file_bytes": 1024**3, "processes": 300, "log_bytes": 1024}
print(json.dumps(zygote.run_job(job)))
"""


def test_a_converter_crash_is_reported_as_the_files_fault_without_its_log(host, fresh_sandbox):
    done = run_in_sandbox(host["job_dir"], sys.executable, "-c", CRASH_PROBE)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply == {"signal": 11, "leftovers": 0}

    box = fresh_sandbox()
    box.job_dir.mkdir(parents=True)
    (box.job_dir / "converter.log").write_text("Traceback ... SECRET-LOG-LINE /internal/path\n")
    limits = sandbox.SandboxLimits.from_settings()
    with pytest.raises(ConversionError) as crashed:
        box._read_result(reply, limits)
    assert str(crashed.value) == (
        "The converter crashed on this file (SIGSEGV); it was not retried. "
        "The file may be damaged or built to attack the converter."
    )
    with pytest.raises(ConversionError) as stopped:
        box._read_result({"exit_code": 70, "leftovers": 0}, limits)
    assert str(stopped.value) == "The converter stopped unexpectedly on this file; it was not retried."


def test_directories_of_dead_workers_sandboxes_are_removed(tmp_path):
    dead, alive = tmp_path / "sandbox-4194303", tmp_path / f"sandbox-{os.getpid()}"
    for directory in (dead, alive):
        (directory / "job").mkdir(parents=True)
    sandbox.remove_abandoned(tmp_path)
    assert not dead.exists() and alive.exists()


def test_with_the_sandbox_off_conversions_still_run_for_trusted_uploads(fresh_sandbox, tmp_path):
    from conversions.results import checked_result
    from tests import zoo

    box = fresh_sandbox(isolated=False)
    limits = sandbox.SandboxLimits.from_settings()
    job_dir = box.prepare(limits)
    (job_dir / "upload").write_bytes(zoo.keras2_cnn_h5(tmp_path).path.read_bytes())
    result = checked_result(box.run({"format": "", "shard_bytes": 4 * 1024**2, "variants": []}, limits))
    assert (result["input_format"], result["output_format"]) == ("keras-h5", "layers-model")
    assert result["parity"]["passed"] is True
    assert box.workdir == str(job_dir)  # no /job: the converter sees the host's paths

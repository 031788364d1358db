"""Run the converter on untrusted uploads in separate, secret-free processes.

A warm "zygote" process (conversions/zygote.py) imports TensorFlow once and
forks a fresh child per job. The zygote is started with a minimal
environment (no credentials, no Django settings), and, where the OS allows
(root with util-linux ``unshare``), in new network, PID and mount
namespaces: no network at all, and no view of the server's processes or
their environments. Each job's child gets its own scratch directory as
working directory, CPU-time and address-space rlimits and an alarm; the
parent also enforces the wall-clock timeout by killing the whole sandbox.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from conversions.errors import ConversionError, SystemFailure

PROJECT_DIR = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SandboxLimits:
    timeout_seconds: int
    memory_bytes: int
    cpu_seconds: int


@functools.cache
def namespace_prefix() -> tuple[str, ...]:
    """``unshare`` arguments if this machine lets us create namespaces."""
    unshare = shutil.which("unshare")
    if not unshare:
        return ()
    command = [unshare, "--net", "--pid", "--fork", "--mount-proc", "true"]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ()
    return (unshare, "--net", "--pid", "--fork", "--kill-child", "--mount-proc")


def clean_environment(home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(home),
        "PYTHONPATH": str(PROJECT_DIR),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        "LANG": "C.UTF-8",
        # tensorflow_decision_forests (imported by tensorflowjs) would
        # otherwise import IPython to print a banner.
        "TFDF_DISABLE_WELCOME_MESSAGE": "1",
    }


def hidden_paths() -> list[str]:
    """What the converter must never see: the server's data and credentials."""
    from django.conf import settings

    paths = [str(settings.VAR_DIR), *settings.SANDBOX_HIDDEN_PATHS]
    location = settings.STORAGES["models"].get("OPTIONS", {}).get("location")
    if settings.STORAGES["models"]["BACKEND"].endswith("FileSystemStorage") and location:
        paths.append(str(location))
    return [path for path in paths if Path(path).is_dir()]


def jail_command(command: list[str], scratch: Path) -> list[str]:
    """`command`, wrapped to run in fresh namespaces with secrets hidden and
    no capabilities (see conversions/jail.py), where this machine allows."""
    prefix = namespace_prefix()
    if not prefix:
        return command
    jail = [sys.executable, "-m", "conversions.jail", str(scratch), json.dumps(hidden_paths()), "--"]
    return [*prefix, *jail, *command]


def _die_with_parent() -> None:
    # If the Celery worker is killed (kill -9), take the sandbox with it.
    # (Linux sends this when the *thread* that started the child ends: start
    # the converter only from long-lived threads.)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Zygote:
    """One warm converter process; used by one worker process at a time."""

    def __init__(self, home: Path, recycle_after: int):
        self.home = home
        self.recycle_after = recycle_after
        self.jobs = 0
        self.process: subprocess.Popen | None = None

    def _start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        log = (self.home / "zygote.log").open("ab")
        self.process = subprocess.Popen(
            jail_command([sys.executable, "-m", "conversions.zygote"], self.home),
            cwd=self.home,
            env=clean_environment(self.home),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self.jobs = 0
        if self._read_reply(timeout=180) != {"ready": True}:
            self.stop()
            raise SystemFailure("the converter process did not start; see zygote.log")

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream:
                stream.close()
        self.process = None

    def _read_reply(self, timeout: float) -> dict | None:
        assert self.process is not None and self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.process.stdout.readline()
        if not line:
            return None
        try:
            return json.loads(line)
        except ValueError:
            return None

    def run(self, workdir: Path, limits: SandboxLimits) -> dict:
        """Run one job; return the child's exit status as a reply dict."""
        if self.process is None or self.process.poll() is not None or self.jobs >= self.recycle_after:
            self.stop()
            self._start()
        self.jobs += 1
        job = {
            "workdir": str(workdir),
            "cpu_seconds": limits.cpu_seconds,
            "memory_bytes": limits.memory_bytes,
            "timeout_seconds": limits.timeout_seconds,
        }
        try:
            self.process.stdin.write((json.dumps(job) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self.stop()
            raise SystemFailure(f"the converter process died: {exc}") from exc
        reply = self._read_reply(timeout=limits.timeout_seconds + 30)
        if reply is None:
            self.stop()
            raise ConversionError(f"Conversion took longer than the {limits.timeout_seconds} s limit and was stopped.")
        return reply


_zygote_lock = threading.Lock()
_the_zygote: Zygote | None = None


def _zygote() -> Zygote:
    global _the_zygote
    from django.conf import settings

    if _the_zygote is None:
        _the_zygote = Zygote(settings.CONVERSION_SCRATCH_DIR, settings.CONVERTER_RECYCLE_AFTER)
    return _the_zygote


def warm_up() -> None:
    """Start the warm converter now, so the first upload does not wait for
    TensorFlow to import (called when a worker starts)."""
    with _zygote_lock:
        zygote = _zygote()
        if zygote.process is None:
            zygote._start()


def run_converter(workdir: Path, request: dict, limits: SandboxLimits) -> dict:
    """Run one conversion; return the child's checked result dict. Raises
    ConversionError when the model failed or hit a limit."""
    (workdir / "request.json").write_text(json.dumps(request))
    with _zygote_lock:  # one job at a time per worker process
        reply = _zygote().run(workdir, limits)
    return _read_result(workdir, reply, limits)


def _read_result(workdir: Path, reply: dict, limits: SandboxLimits) -> dict:
    log_path = workdir / "converter.log"
    tail = log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""
    result_path = workdir / "result.json"
    if reply.get("signal") == signal.SIGALRM:
        raise ConversionError(f"Conversion took longer than the {limits.timeout_seconds} s limit and was stopped.")
    if reply.get("signal") in (signal.SIGXCPU, signal.SIGKILL):
        raise ConversionError(f"Conversion used more than the {limits.cpu_seconds} s CPU-time limit and was stopped.")
    if "MemoryError" in tail or "std::bad_alloc" in tail or "Resource exhausted" in tail:
        if not result_path.is_file() or reply.get("exit_code") != 0:
            raise ConversionError(
                f"Conversion needed more than the {limits.memory_bytes // 1024**2} MiB memory limit and was stopped."
            )
    if reply.get("exit_code") != 0 or not result_path.is_file():
        raise SystemFailure(f"converter child ended with {reply}: {tail[-500:]}")
    try:
        result = json.loads(result_path.read_text())
    except ValueError as exc:
        raise SystemFailure(f"converter wrote an unreadable result: {exc}") from exc
    if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
        raise SystemFailure("converter wrote a result of the wrong shape")
    figures = clean_parity(result.get("parity"))
    result["variants"] = clean_variants(result.get("variants"))
    result["layers"] = clean_layers(result.get("layers"))
    if not result["ok"]:
        raise ConversionError(str(result.get("error") or "The conversion failed.")[:2000], parity=figures)
    if result.get("output_format") not in ("layers-model", "graph-model"):
        raise SystemFailure("converter reported an unknown output format")
    if figures is None:
        raise SystemFailure("converter reported no parity figures")
    result["parity"] = figures
    return result


QUANTIZATIONS = ("float16", "uint8", "uint16")


def _shape(value):
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, list) and len(value) <= 64:
        return [_shape(item) for item in value]
    raise ValueError("not a shape")


def clean_layers(layers) -> list[dict]:
    """Keep only well-typed layer descriptions from the untrusted child."""
    if not isinstance(layers, list):
        return []
    try:
        return [
            {
                "name": str(layer["name"])[:255],
                "class_name": str(layer["class_name"])[:100],
                "output_shape": _shape(layer.get("output_shape")),
            }
            for layer in layers[:5000]
        ]
    except (KeyError, TypeError, ValueError):
        return []


def clean_variants(variants) -> dict:
    """Keep only well-typed variant outcomes from the untrusted child."""
    if not isinstance(variants, dict):
        return {}
    cleaned = {}
    for quantization in QUANTIZATIONS:
        outcome = variants.get(quantization)
        if isinstance(outcome, dict):
            ok = outcome.get("ok") is True
            figures = clean_parity(outcome.get("parity"))
            if ok and figures is None:
                ok, outcome = False, {"error": "The variant was not checked against TensorFlow."}
            cleaned[quantization] = {"ok": ok, "error": str(outcome.get("error") or "")[:2000], "parity": figures}
    return cleaned


def clean_parity(figures) -> dict | None:
    """Keep only well-typed parity figures from the untrusted child."""
    if not isinstance(figures, dict):
        return None
    try:
        if figures.get("reference") == "none":  # a TF.js upload: run, but nothing to compare with
            cleaned = {"reference": "none"}
        else:
            cleaned = {key: float(figures[key]) for key in ("max_abs_error", "max_rel_error", "atol", "rtol")}
        cleaned["passed"] = bool(figures["passed"])
        cleaned["inputs"] = [
            {
                "name": str(item["name"])[:200],
                "shape": [int(d) for d in item["shape"]][:16],
                "dtype": str(item["dtype"])[:16],
            }
            for item in list(figures.get("inputs", []))[:64]
        ]
    except (KeyError, TypeError, ValueError):
        return None
    return cleaned

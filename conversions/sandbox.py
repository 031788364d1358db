"""Run the converter on an untrusted upload in a separate, secret-free process.

The child gets a minimal environment (no credentials, no Django settings),
its own scratch directory as working directory, CPU-time and memory
rlimits, a wall-clock timeout, and, where the OS allows (root with
util-linux ``unshare``), new network, PID and mount namespaces: no network
at all, and no view of the server's processes or their environments.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conversions.errors import ConversionError, SystemFailure

PROJECT_DIR = Path(__file__).resolve().parent.parent


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


def clean_environment(workdir: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "PYTHONPATH": str(PROJECT_DIR),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        "LANG": "C.UTF-8",
    }


def _limit_resources(limits: SandboxLimits) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_converter(workdir: Path, request: dict, limits: SandboxLimits) -> dict:
    """Run one conversion; return the child's result dict (already checked
    for shape). Raises ConversionError when the model hit a limit."""
    (workdir / "request.json").write_text(json.dumps(request))
    command = [*namespace_prefix(), sys.executable, "-m", "conversions.converter", str(workdir)]
    log_path = workdir / "converter.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=clean_environment(workdir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=functools.partial(_limit_resources, limits),
        )
        try:
            returncode = process.wait(timeout=limits.timeout_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise ConversionError(
                f"Conversion took longer than the {limits.timeout_seconds} s limit and was stopped."
            ) from None
    return _read_result(workdir, returncode, limits, log_path)


def _read_result(workdir: Path, returncode: int, limits: SandboxLimits, log_path: Path) -> dict:
    result_path = workdir / "result.json"
    if returncode != 0 or not result_path.is_file():
        tail = log_path.read_text(errors="replace")[-2000:]
        if returncode in (-signal.SIGXCPU, -signal.SIGKILL) or "SIGXCPU" in tail:
            raise ConversionError(
                f"Conversion used more than the {limits.cpu_seconds} s CPU-time limit and was stopped."
            )
        if "MemoryError" in tail or "std::bad_alloc" in tail or "Resource exhausted" in tail:
            raise ConversionError(
                f"Conversion needed more than the {limits.memory_bytes // 1024**2} MiB memory limit and was stopped."
            )
        raise SystemFailure(f"converter exited with status {returncode}: {tail[-500:]}")
    try:
        result = json.loads(result_path.read_text())
    except ValueError as exc:
        raise SystemFailure(f"converter wrote an unreadable result: {exc}") from exc
    if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
        raise SystemFailure("converter wrote a result of the wrong shape")
    figures = clean_parity(result.get("parity"))
    if not result["ok"]:
        raise ConversionError(str(result.get("error") or "The conversion failed.")[:2000], parity=figures)
    if result.get("output_format") not in ("layers-model", "graph-model"):
        raise SystemFailure("converter reported an unknown output format")
    if figures is None:
        raise SystemFailure("converter reported no parity figures")
    result["parity"] = figures
    return result


def clean_parity(figures) -> dict | None:
    """Keep only well-typed parity figures from the untrusted child."""
    if not isinstance(figures, dict):
        return None
    try:
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

"""Run the converter on untrusted uploads inside a bubblewrap sandbox.

One warm sandbox per worker process: ``bwrap`` starts the zygote
(converter/zygote.py), which imports TensorFlow once and forks a fresh
child per job. The sandbox:

- runs as uid/gid 65534 in a new user namespace, with no capabilities,
  ``no_new_privs`` and no way to make further user namespaces;
- has new PID, network (loopback only), IPC, UTS and cgroup namespaces;
- sees a read-only view of only the Python installation, the virtualenv,
  the converter package and the npm packages TF.js needs, a fresh /proc
  and /dev, a size-limited private /tmp and /dev/shm, and one writable
  directory, ``/job``, holding the current job's files and nothing else;
- starts with an empty environment and no file descriptor but its pipes;
- runs under a seccomp filter (conversions/seccomp.py).

Per job: rlimits on CPU time, address space, file size and processes, an
alarm, a wall-clock timeout and a scratch-space watchdog enforced from
here; when the job ends, every process it started is killed and /job is
emptied. Without bubblewrap, conversions fail closed, unless
``MODELPORT_SANDBOX=off`` says the operator trusts every upload.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from conversions.seccomp import bpf_file
from converter.errors import ConversionError, SystemFailure

PROJECT_DIR = Path(__file__).resolve().parent.parent
SANDBOX_UID = 65534
JOB_DIR = "/job"
PR_SET_PDEATHSIG = 1
MAX_RESULT_BYTES = 16 * 1024**2
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGSYS}
logger = logging.getLogger(__name__)


class SandboxUnavailable(SystemFailure):
    """The sandbox cannot be created on this machine; nothing is converted."""


@dataclass(frozen=True)
class SandboxLimits:
    timeout_seconds: int
    memory_bytes: int
    cpu_seconds: int
    scratch_bytes: int
    file_bytes: int
    processes: int
    log_bytes: int = 1024**2
    tmp_bytes: int = 256 * 1024**2
    data_bytes: int = resource.RLIM_INFINITY  # RLIMIT_DATA, for jobs without an address-space limit

    @classmethod
    def from_settings(cls) -> SandboxLimits:
        from django.conf import settings

        return cls(
            timeout_seconds=settings.CONVERSION_TIMEOUT_SECONDS,
            memory_bytes=settings.CONVERSION_MEMORY_BYTES,
            cpu_seconds=settings.CONVERSION_TIMEOUT_SECONDS,
            scratch_bytes=settings.CONVERSION_SCRATCH_BYTES,
            file_bytes=settings.CONVERSION_SCRATCH_BYTES,
            processes=settings.CONVERSION_MAX_PROCESSES,
        )

    @classmethod
    def for_browsers(cls) -> SandboxLimits:
        """Chromium reserves terabytes of address space (V8's sandbox, wasm
        memories), so no RLIMIT_AS; RLIMIT_DATA (memory written to, not
        reserved) bounds it instead, and time, CPU, files and processes stay bounded."""
        from django.conf import settings

        return cls(
            timeout_seconds=settings.BROWSER_CHECK_SECONDS,
            memory_bytes=resource.RLIM_INFINITY,
            data_bytes=settings.CONVERSION_MEMORY_BYTES,
            cpu_seconds=4 * settings.BROWSER_CHECK_SECONDS,
            scratch_bytes=settings.CONVERSION_SCRATCH_BYTES,
            file_bytes=settings.CONVERSION_SCRATCH_BYTES,
            processes=settings.CONVERSION_MAX_PROCESSES,
        )


def clean_environment(home: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "PYTHONPATH": str(PROJECT_DIR),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        # `python -m` would put the job directory first on sys.path.
        "PYTHONSAFEPATH": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        "LANG": "C.UTF-8",
        # tensorflow_decision_forests (imported by tensorflowjs) would
        # otherwise import IPython to print a banner.
        "TFDF_DISABLE_WELCOME_MESSAGE": "1",
    }


def readable_trees() -> list[Path]:
    """What the converter needs to read: the interpreter, the packages, the
    converter code and TF.js; nothing else of the project or the host."""
    node = shutil.which("node")
    trees = [
        Path(sys.base_prefix),
        Path(sys.prefix),
        PROJECT_DIR / "converter",
        PROJECT_DIR / "node_modules",
        *([Path(node).resolve().parent] if node else []),
    ]
    kept: list[Path] = [Path("/usr")]
    for tree in (tree.resolve() for tree in trees):
        if tree.exists() and not any(tree.is_relative_to(other) for other in kept):
            kept.append(tree)
    return kept


def bwrap_command(job_dir: Path, seccomp_fd: int, limits: SandboxLimits) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, so the converter sandbox cannot be created "
            "(install the Debian package 'bubblewrap')."
        )
    command = [
        bwrap, "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--disable-userns", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--hostname", "modelport-sandbox",
    ]  # fmt: skip
    for top in ("bin", "lib", "lib64", "sbin"):
        path = Path("/") / top
        if path.is_symlink():
            command += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir() and not path.is_relative_to("/usr"):
            command += ["--ro-bind", str(path), str(path)]
    # Fresh /proc, /dev and /tmp first: the read-only trees may live under /tmp.
    command += ["--proc", "/proc", "--dev", "/dev"]
    command += ["--size", str(limits.tmp_bytes), "--tmpfs", "/dev/shm"]
    command += ["--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    for tree in readable_trees():
        command += ["--ro-bind", str(tree), str(tree)]
    command += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    command += ["--bind", str(job_dir), JOB_DIR, "--remount-ro", "/", "--chdir", JOB_DIR, "--clearenv"]
    for name, value in clean_environment(JOB_DIR).items():
        command += ["--setenv", name, value]
    command += ["--seccomp", str(seccomp_fd), "--", sys.executable, "-m", "converter.zygote"]
    return command


def _die_with_parent() -> None:
    # If the Celery worker is killed (kill -9), take the sandbox with it.
    # (Linux sends this when the *thread* that started the child ends: start
    # the sandbox only from long-lived threads.)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def disk_usage(root: Path) -> int:
    """Bytes of disk the files under ``root`` take (symlinks not followed)."""
    total = 0
    stack = [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += max(info.st_blocks * 512, 0)
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return total


def empty_directory(path: Path) -> None:
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


class Sandbox:
    """One warm sandbox; used by one worker process, one job at a time."""

    def __init__(self, root: Path, recycle_after: int, isolated: bool = True):
        self.root = root
        self.job_dir = root / "job"
        self.recycle_after = recycle_after
        self.isolated = isolated
        self.jobs = 0
        self.process: subprocess.Popen | None = None

    @property
    def workdir(self) -> str:
        """Where the job directory is, as the converter sees it."""
        return JOB_DIR if self.isolated else str(self.job_dir)

    def start(self, limits: SandboxLimits) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.job_dir.mkdir(parents=True, mode=0o700)
        os.chmod(self.root, 0o700)
        log = (self.root / "zygote.log").open("ab")
        seccomp_fd = bpf_file()
        try:
            if self.isolated:
                command, env = bwrap_command(self.job_dir, seccomp_fd, limits), {}
            else:
                command, env = [sys.executable, "-m", "converter.zygote"], clean_environment(str(self.job_dir))
            self.process = subprocess.Popen(
                command,
                cwd=self.job_dir,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                pass_fds=(seccomp_fd,),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            os.close(seccomp_fd)
            log.close()
        self.jobs = 0
        if self._read_reply(timeout=180) != {"ready": True}:
            self.stop()
            raise self._start_failure()

    def _start_failure(self) -> SystemFailure:
        log = (self.root / "zygote.log").read_text(errors="replace")[-2000:]
        logger.error("the converter sandbox did not start:\n%s", log)
        if self.isolated and "bwrap:" in log:
            reason = log[log.rindex("bwrap:") :].splitlines()[0]
            return SandboxUnavailable(f"The converter sandbox cannot be created on this machine ({reason}).")
        return SystemFailure("the converter process did not start")

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

    def _alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _read_reply(self, timeout: float) -> dict | None:
        assert self.process is not None and self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.process.stdout.readline(4096)
        try:
            return json.loads(line) if line else None
        except ValueError:
            return None

    def prepare(self, limits: SandboxLimits) -> Path:
        """Make the sandbox ready for a job; return the (empty) job directory."""
        if not self._alive() or self.jobs >= self.recycle_after:
            self.stop()
            self.start(limits)
        empty_directory(self.job_dir)
        return self.job_dir

    def run(self, request: dict, limits: SandboxLimits) -> dict:
        """Run the job whose files are in the job directory; return the
        converter's result dict, unchecked. Raises ConversionError when the
        job failed or hit a limit."""
        if not self._alive():  # stopped by an earlier job's crash or limit
            raise SystemFailure("the converter process is not running")
        (self.job_dir / "result.json").unlink(missing_ok=True)  # an earlier job's, in the same directory
        _write_new(self.job_dir, "request.json", json.dumps(request).encode())
        self.jobs += 1
        job = {
            "workdir": self.workdir,
            "own_pid_namespace": self.isolated,
            "cpu_seconds": limits.cpu_seconds,
            "memory_bytes": limits.memory_bytes,
            "data_bytes": limits.data_bytes,
            "timeout_seconds": limits.timeout_seconds,
            "file_bytes": limits.file_bytes,
            "processes": limits.processes,
            "log_bytes": limits.log_bytes,
        }
        try:
            self.process.stdin.write((json.dumps(job) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self.stop()
            raise SystemFailure(f"the converter process died: {exc}") from exc
        reply = self._await_reply(limits)
        if reply.get("leftovers"):
            logger.warning("a conversion left %s processes running; they were killed", reply["leftovers"])
        return self._read_result(reply, limits)

    def _await_reply(self, limits: SandboxLimits) -> dict:
        deadline = limits.timeout_seconds + 30
        waited = 0.0
        while waited < deadline:
            reply = self._read_reply(timeout=1.0)
            waited += 1.0
            self._check_scratch(limits)
            if reply is not None:
                return reply
            if not self._alive():
                self.stop()
                raise ConversionError(
                    "The converter crashed on this file (its sandbox ended unexpectedly); it was not retried."
                )
        self.stop()
        raise ConversionError(f"Conversion took longer than the {limits.timeout_seconds} s limit and was stopped.")

    def _check_scratch(self, limits: SandboxLimits) -> None:
        """The job directory's size, checked every second and at the end."""
        if disk_usage(self.job_dir) > limits.scratch_bytes:
            self.stop()
            raise ConversionError(
                f"The conversion wrote more than {limits.scratch_bytes // 1024**2} MiB of files and was stopped."
            )

    def _read_result(self, reply: dict, limits: SandboxLimits) -> dict:
        number = reply.get("signal")
        if number == signal.SIGALRM:
            raise ConversionError(f"Conversion took longer than the {limits.timeout_seconds} s limit and was stopped.")
        if number in (signal.SIGXCPU, signal.SIGKILL):
            raise ConversionError(
                f"Conversion used more than the {limits.cpu_seconds} s CPU-time limit and was stopped."
            )
        if number == signal.SIGXFSZ:
            raise ConversionError("The conversion tried to write a file larger than allowed and was stopped.")
        tail = self._log_tail()
        if number in CRASH_SIGNALS:
            logger.warning("converter crashed with %s; log tail:\n%s", signal.Signals(number).name, tail)
            raise ConversionError(
                f"The converter crashed on this file ({signal.Signals(number).name}); it was not retried. "
                "The file may be damaged or built to attack the converter."
            )
        result = read_regular_file(self.job_dir, "result.json", MAX_RESULT_BYTES)
        if reply.get("exit_code") != 0 or result is None:
            if "MemoryError" in tail or "std::bad_alloc" in tail or "Resource exhausted" in tail:
                raise ConversionError(
                    f"Conversion needed more than the {min(limits.memory_bytes, limits.data_bytes) // 1024**2} "
                    "MiB memory limit "
                    "and was stopped."
                )
            logger.warning("converter ended with %s and no result; log tail:\n%s", reply, tail)
            raise ConversionError("The converter stopped unexpectedly on this file; it was not retried.")
        try:
            parsed = json.loads(result)
        except ValueError:
            raise ConversionError("The converter wrote an unreadable result for this file.") from None
        if not isinstance(parsed, dict):
            raise ConversionError("The converter wrote an unreadable result for this file.")
        return parsed

    def _log_tail(self) -> str:
        """The end of the converter's log, for the worker's own log only."""
        handle = open_inside(self.job_dir, "converter.log")
        if handle is None:
            return ""
        with handle:
            handle.seek(max(os.fstat(handle.fileno()).st_size - 4000, 0))
            return handle.read().decode(errors="replace")


def read_regular_file(directory: Path, relative: str, limit: int) -> bytes | None:
    """The bytes of a regular file under ``directory`` written by the
    sandbox, never following a symlink it may have planted; None if it is
    missing, not a regular file, or larger than ``limit``."""
    handle = open_inside(directory, relative)
    if handle is None:
        return None
    with handle:
        return None if os.fstat(handle.fileno()).st_size > limit else handle.read()


def _write_new(directory: Path, name: str, data: bytes) -> None:
    """Write ``directory/name`` afresh: a second job in one job directory
    must not write through a link the first one left in its place."""
    try:
        os.unlink(directory / name)
    except FileNotFoundError:
        pass
    fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def open_inside(directory: Path, relative: str):
    """Open ``directory/relative`` for reading, component by component with
    O_NOFOLLOW; None unless it is a regular file."""
    import stat

    parts = [part for part in relative.split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        return None
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        return None
    return os.fdopen(file_fd, "rb")


def remove_abandoned(scratch: Path) -> None:
    """Remove the sandbox directories of worker processes that are gone."""
    for directory in scratch.glob("sandbox-*"):
        pid = directory.name.removeprefix("sandbox-")
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's


_lock = threading.Lock()
_sandbox: Sandbox | None = None


def _the_sandbox() -> Sandbox:
    global _sandbox
    from django.conf import settings

    if _sandbox is None:
        if settings.SANDBOX == "off":
            logger.warning(
                "MODELPORT_SANDBOX=off: uploads are converted WITHOUT isolation. Only for uploads you trust."
            )
        remove_abandoned(settings.CONVERSION_SCRATCH_DIR)
        _sandbox = Sandbox(
            settings.CONVERSION_SCRATCH_DIR / f"sandbox-{os.getpid()}",
            settings.CONVERTER_RECYCLE_AFTER,
            isolated=settings.SANDBOX != "off",
        )
    return _sandbox


def warm_up() -> None:
    """Start the sandbox now, so the first upload does not wait for
    TensorFlow to import; say loudly if it cannot be created (called when
    a worker starts)."""
    with _lock:
        sandbox = _the_sandbox()
        if not sandbox._alive():
            sandbox.start(SandboxLimits.from_settings())


@contextlib.contextmanager
def job(limits: SandboxLimits):
    """``with sandbox.job(limits) as job_dir:`` gives the empty job directory
    of this worker's sandbox, held for this job alone until the block ends
    (run the job with :func:`run`, publish from the directory, then it is
    emptied)."""
    with _lock:
        sandbox = _the_sandbox()
        job_dir = sandbox.prepare(limits)
        try:
            yield job_dir
        finally:
            if job_dir.exists():
                empty_directory(job_dir)


def run(request: dict, limits: SandboxLimits) -> dict:
    """Run one job in this worker's sandbox (inside a ``job`` block)."""
    return _the_sandbox().run(request, limits)

"""A warm converter: imports TensorFlow once, then forks one fresh child per
job (``python -m converter.zygote``, as the sandbox's only program).

The zygote never reads an upload. Each job runs in a child forked from the
clean, warm state, with its own rlimits and alarm, no file descriptor but
its log pipe, and exits when the job is done. When it has exited, every
other process of the sandbox (anything the job started, ``setsid`` or not)
is killed and the sandbox's private /tmp and /dev/shm are emptied, so
nothing one upload does reaches the next. Protocol on stdin/stdout, one JSON
object per line:

    -> {"workdir": "/job", "cpu_seconds": n, "memory_bytes": n, "timeout_seconds": n,
        "file_bytes": n, "processes": n, "log_bytes": n}
    <- {"ready": true}                                        (once, after warm-up)
    <- {"exit_code": 0, "leftovers": 0} | {"signal": 9, ...}  (per job)
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import shutil
import signal
import sys
import time
from pathlib import Path

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
SCRUBBED = ("/tmp", "/dev/shm")


def _prctl(option: int, value: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _limit(kind: int, value: int) -> None:
    resource.setrlimit(kind, (value, value))


def _run_child(job: dict, log_fd: int) -> None:
    workdir = Path(job["workdir"])
    os.chdir(workdir)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])  # nothing of the zygote's
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    os.setsid()
    resource.setrlimit(resource.RLIMIT_CPU, (job["cpu_seconds"], job["cpu_seconds"] + 5))
    _limit(resource.RLIMIT_AS, job["memory_bytes"])
    _limit(resource.RLIMIT_DATA, job.get("data_bytes", resource.RLIM_INFINITY))
    _limit(resource.RLIMIT_FSIZE, job["file_bytes"])
    _limit(resource.RLIMIT_NPROC, job["processes"])
    _limit(resource.RLIMIT_CORE, 0)
    signal.alarm(job["timeout_seconds"])  # default action: the child dies
    tmp = workdir / "tmp"
    tmp.mkdir(exist_ok=True)
    os.environ["HOME"] = str(workdir)
    os.environ["TMPDIR"] = str(tmp)
    import tempfile

    tempfile.tempdir = None

    from converter import run

    run.handle(workdir)


def _other_processes(own_namespace: bool) -> list[int]:
    """Live processes a job left: in the sandbox's own PID namespace, all but
    bwrap's init and us; otherwise our descendants (we adopt orphans)."""
    me = os.getpid()
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in (b"Z", b"X"):
            parents[int(entry)] = int(fields[1])
    if own_namespace:
        return [pid for pid in parents if pid not in (1, me)]

    def descends(pid: int) -> bool:
        for _ in range(64):
            pid = parents.get(pid, 0)
            if pid == me:
                return True
            if pid <= 1:
                return False
        return False

    return [pid for pid in parents if pid != me and descends(pid)]


def kill_leftovers(own_namespace: bool) -> int:
    """SIGKILL whatever the job left running; return how many there were."""
    found = set()
    for _ in range(200):
        pids = _other_processes(own_namespace)
        if not pids:
            break
        found.update(pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap()
        time.sleep(0.01)
    else:
        raise SystemExit("processes left by a job could not be stopped")
    return len(found)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as mounts:
        return [line.split()[4] for line in mounts]


def scrub() -> None:
    """Empty the private /tmp and /dev/shm, sparing the read-only trees
    mounted under them (a checkout living in /tmp)."""
    mounts = _mount_points()
    for root in SCRUBBED:
        if not os.path.isdir(root):
            continue
        for entry in os.scandir(root):
            if any(point == entry.path or point.startswith(entry.path + "/") for point in mounts):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass


def run_job(job: dict) -> dict:
    log_path = Path(job["workdir"]) / "converter.log"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            _run_child(job, write_end)
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    os.close(write_end)
    status = _copy_log(read_end, pid, log_path, job["log_bytes"])
    os.close(read_end)
    reply = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"exit_code": os.WEXITSTATUS(status)}
    reply["leftovers"] = kill_leftovers(job["own_pid_namespace"])
    if job["own_pid_namespace"]:  # a private /tmp: empty it for the next job
        scrub()
    return reply


def _copy_log(read_end: int, pid: int, log_path: Path, limit: int) -> int:
    """Keep at most ``limit`` bytes of the child's output; wait for it to exit."""
    written = 0
    with open(log_path, "wb") as log:
        open_pipe = True
        while True:
            if open_pipe:
                ready, _, _ = select.select([read_end], [], [], 0.2)
                if ready:
                    chunk = os.read(read_end, 65536)
                    if not chunk:
                        open_pipe = False
                    elif written < limit:
                        log.write(chunk[: limit - written])
                        written += len(chunk)
            else:
                time.sleep(0.05)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status


def serve(stdin) -> None:
    # Replies go to a private copy of stdout; fd 1 becomes stderr so nothing
    # a library prints can corrupt the protocol.
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    # Jobs run as our uid: keep them from reading or writing our memory
    # through /proc, and adopt whatever they orphan.
    _prctl(PR_SET_DUMPABLE, 0)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    from converter import run

    run.warm_up()
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in stdin:
        replies.write(json.dumps(run_job(json.loads(line))) + "\n")
        replies.flush()


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    serve(sys.stdin)

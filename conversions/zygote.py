"""A warm converter: imports TensorFlow once, then forks one fresh child per
job (``python -m conversions.zygote``, inside the sandbox).

The zygote itself never touches an upload: each job runs in a child forked
from the clean, warm state, with its own rlimits and alarm, and exits when
the job is done, so nothing one upload does can reach the next. Protocol on
stdin/stdout, one JSON object per line:

    -> {"workdir": "...", "cpu_seconds": n, "memory_bytes": n, "timeout_seconds": n}
    <- {"ready": true}                                   (once, after warm-up)
    <- {"exit_code": 0} | {"signal": 9}                  (per job)
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
from pathlib import Path


def _run_child(job: dict) -> None:
    workdir = Path(job["workdir"])
    os.chdir(workdir)
    log = os.open(workdir / "converter.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    resource.setrlimit(resource.RLIMIT_CPU, (job["cpu_seconds"], job["cpu_seconds"] + 5))
    resource.setrlimit(resource.RLIMIT_AS, (job["memory_bytes"], job["memory_bytes"]))
    signal.alarm(job["timeout_seconds"])  # default action: the child dies
    os.environ["HOME"] = os.environ["TMPDIR"] = str(workdir)

    from conversions import converter

    converter.handle(workdir)


def serve(stdin) -> None:
    # Replies go to a private copy of stdout; fd 1 becomes stderr so nothing
    # a library prints can corrupt the protocol.
    stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    from conversions import converter

    converter.warm_up()
    stdout.write(json.dumps({"ready": True}) + "\n")
    stdout.flush()
    for line in stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _run_child(job)
            except BaseException:
                code = 70
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            reply = {"signal": os.WTERMSIG(status)}
        else:
            reply = {"exit_code": os.WEXITSTATUS(status)}
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    serve(sys.stdin)

"""Benchmark: Modelport under load in its production setup (deploy/nginx.conf
in front of deploy/web, two Celery workers): slow uploads, many readers, a
burst of uploads.

    .venv/bin/python bench/bench_load.py [--readers-seconds 60] [--database-url postgres://…/empty_db]

1. Slow clients: 8 uploads trickling in at 50 KB/s each while wrk reads an
   alias model.json (which always reaches the app): p99 against the same
   read without the trickle, through the front and, for comparison, straight
   to the app server.
2. 64 concurrent readers for 60 s on an alias model.json and a numbered
   one: requests, errors (socket errors and non-2xx answers), p99.
3. A burst of 20 uploads of a small Keras model with 2 workers: each must
   end ready with one conversion attempt; reports queue time (upload →
   conversion start) and upload → ready.
Needs `nginx` and `wrk` (`make bench-load` installs them with apt).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import (  # noqa: E402
    PROJECT_DIR,
    _ms,
    bench_environment,
    free_port,
    production_proxy_conf,
    publish_models,
    run_wrk,
    start,
    stop_all,
    wait_for,
    wrk,
)

TRICKLE_CLIENTS = 8
TRICKLE_BYTES_PER_S = 50_000
BURST = 20


def trickle(host: str, port: int, path: str, token: str, seconds: float, stop: threading.Event) -> int:
    """An upload that sends its body at TRICKLE_BYTES_PER_S and gives up
    after ``seconds`` (as a slow phone on a train would); returns bytes sent."""
    body_size = int(TRICKLE_BYTES_PER_S * seconds * 2)  # more than it will send
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Token {token}\r\n"
        f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {body_size}\r\n\r\n"
        '--x\r\nContent-Disposition: form-data; name="file"; filename="slow.h5"\r\n\r\n'
    ).encode()
    sent = 0
    with socket.create_connection((host, port)) as sock:
        sock.sendall(head)
        chunk = b"\0" * (TRICKLE_BYTES_PER_S // 10)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop.is_set():
            sock.sendall(chunk)
            sent += len(chunk)
            time.sleep(0.1)
    return sent


def wrk_errors(url: str, seconds: int, connections: int) -> dict:
    out = wrk(url, seconds, connections)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "socket_errors": sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "p99_ms": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
    }


def small_model(work: Path, env: dict) -> Path:
    path = work / "small.h5"
    script = (
        "import sys, tf_keras as keras; keras.utils.set_random_seed(1); "
        "m = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation='relu'), keras.layers.Dense(4)]); "
        "m.save(sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], env=env, check=True, capture_output=True)
    return path


def burst(front: str, token: str, model: Path) -> dict:
    api = f"{front}/api/v1/models/bench/burst"
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    assert session.post(f"{front}/api/v1/models/", json={"name": "burst", "public": True}).status_code == 201

    def upload(i: int) -> tuple[int, float]:
        with model.open("rb") as handle:
            response = requests.post(
                f"{api}/versions/", files={"file": (f"small-{i}.h5", handle)},
                headers={"Authorization": f"Token {token}"}, timeout=120,
            )  # fmt: skip
        if response.status_code != 202:
            raise SystemExit(f"upload {i}: {response.status_code} {response.text[:300]}")
        return response.json()["number"], time.monotonic()

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(BURST) as pool:
        posted = list(pool.map(upload, range(BURST)))
    deadline = time.monotonic() + 900
    pending = {number: at for number, at in posted}
    results = {}
    while pending and time.monotonic() < deadline:
        for number in list(pending):
            version = session.get(f"{api}/versions/{number}/").json()
            if version["status"] in ("ready", "failed"):
                results[number] = (version, time.monotonic() - pending.pop(number))
        time.sleep(0.25)
    if pending:
        raise SystemExit(f"versions {sorted(pending)} did not finish within 15 minutes")
    queue, ready = [], []
    for version, seconds in results.values():
        created, begun = (datetime.fromisoformat(version[k]).timestamp() for k in ("created_at", "started_at"))
        queue.append(begun - created)
        ready.append(seconds)
    return {
        "uploads": BURST,
        "ready": sum(v["status"] == "ready" for v, _ in results.values()),
        "one_attempt_each": all(v["attempts"] == 1 for v, _ in results.values()),
        "failed": [v["error"] for v, _ in results.values() if v["status"] != "ready"],
        "queue_s": (min(queue), statistics.median(queue), max(queue)),
        "upload_to_ready_s": (min(ready), statistics.median(ready), max(ready)),
        "all_ready_after_s": time.monotonic() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20, help="wrk duration with and without the trickle")
    parser.add_argument("--readers-seconds", type=int, default=60)
    parser.add_argument("--database-url", help="an empty database to use; default SQLite")
    parser.add_argument("--parts", default="slow,readers,burst", help="which parts to run (comma-separated)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelport-bench-load-"))
    work.chmod(0o755)
    env = bench_environment(work / "var", args.database_url, CELERY_QUEUE="bench-load")
    processes: list[subprocess.Popen] = []
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=PROJECT_DIR, env=env, check=True)
        urls = publish_models(env, work)
        token = urls["private"]["token_write"]
        model = small_model(work, env)
        app_port, proxy_port = free_port(), free_port()
        web_env = {**env, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(app_port)}
        processes.append(start([str(PROJECT_DIR / "deploy" / "web")], web_env, work / "web.log"))
        (work / "proxy.conf").write_text(production_proxy_conf(work, proxy_port, app_port))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        processes.append(start([nginx, "-c", str(work / "proxy.conf"), "-g", "daemon off;"], env, work / "proxy.log"))
        for n in (1, 2):
            worker = [sys.executable, "-m", "celery", "-A", "modelport", "worker", "--pool=solo", "--concurrency=1",
                      "-l", "info", "-Q", "bench-load", "-n", f"bench-load-{n}-{os.getpid()}@%h"]  # fmt: skip
            processes.append(start(worker, env, work / f"worker-{n}.log"))
        app, front = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{proxy_port}"
        wait_for(f"{app}/api/v1/models/")
        wait_for(f"{front}/api/v1/models/")
        alias = "/m/bench/mobilenet/production/model.json"
        upload_path = "/api/v1/models/bench/mobilenet/versions/"

        slow, readers, burst_result = {}, {}, None
        parts = args.parts.split(",")
        setups = (("production", front, proxy_port), ("granian alone", app, app_port))
        for setup, base, port in setups if "slow" in parts else ():
            quiet = run_wrk(base + alias, args.seconds, 16)
            stop = threading.Event()
            with concurrent.futures.ThreadPoolExecutor(TRICKLE_CLIENTS) as pool:
                trickles = [
                    pool.submit(trickle, "127.0.0.1", port, upload_path, token, args.seconds + 4, stop)
                    for _ in range(TRICKLE_CLIENTS)
                ]
                time.sleep(2)
                try:
                    during = run_wrk(base + alias, args.seconds, 16)
                except SystemExit as exc:  # wrk saw errors or timeouts: record, not abort
                    during = {"error": str(exc)[:300]}
                stop.set()
                sent = sum(f.result() for f in trickles)
            slow[setup] = {"quiet": quiet, "trickle": during, "trickled_bytes": sent}

        if "readers" in parts:
            readers = {
                "alias model.json (reaches the app)": wrk_errors(front + alias, args.readers_seconds, 64),
                "numbered model.json (front's cache)": wrk_errors(
                    front + "/m/bench/mobilenet/1/model.json", args.readers_seconds, 64
                ),
            }
        if "burst" in parts:
            burst_result = burst(front, token, model)
    except SystemExit:
        for log in sorted(work.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}", file=sys.stderr)
        raise
    finally:
        stop_all(processes)
        shutil.rmtree(work, ignore_errors=True)

    database = "PostgreSQL" if args.database_url else "SQLite"
    print(f"\n{os.cpu_count()} cores, loopback, {database}; production = deploy/nginx.conf → deploy/web, 2 workers\n")
    print(f"1. {TRICKLE_CLIENTS} uploads trickling at {TRICKLE_BYTES_PER_S // 1000} KB/s each; wrk -t2 -c16 "
          f"-d{args.seconds}s on {alias}")  # fmt: skip
    for setup, m in slow.items():
        during = m["trickle"]
        shown = (
            f"{during['requests_per_s']:.0f} req/s, p99 {during['p99_ms']:.1f} ms"
            if "p99_ms" in during else during["error"]
        )  # fmt: skip
        print(f"   {setup:14} quiet: {m['quiet']['requests_per_s']:.0f} req/s, p99 {m['quiet']['p99_ms']:.1f} ms;"
              f" during the trickle ({m['trickled_bytes'] / 1e6:.1f} MB sent): {shown}")  # fmt: skip
    print(f"2. 64 readers for {args.readers_seconds} s through the front")
    for label, m in readers.items():
        print(f"   {label:38} {m['requests']} requests, {m['requests_per_s']:.0f}/s, p99 {m['p99_ms']:.1f} ms, "
              f"errors: {m['socket_errors']} socket, {m['non_2xx']} non-2xx")  # fmt: skip
    if burst_result is None:
        return
    b = burst_result
    print(f"3. a burst of {b['uploads']} uploads, 2 workers: {b['ready']} ready, one attempt each: "
          f"{b['one_attempt_each']}, all ready after {b['all_ready_after_s']:.1f} s")  # fmt: skip
    print("   queue (upload → conversion start) min/median/max s: " + " / ".join(f"{x:.1f}" for x in b["queue_s"]))
    print("   upload → ready min/median/max s: " + " / ".join(f"{x:.1f}" for x in b["upload_to_ready_s"]))
    if b["failed"]:
        print("   failed: " + "; ".join(b["failed"]))


if __name__ == "__main__":
    main()

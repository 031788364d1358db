"""Benchmark: Modelport serving model.json and weight blobs, against nginx
serving the very same files from the same disk, in the same run.

Two Modelport setups are measured: gunicorn alone (4 workers), and the
documented production setup, deploy/nginx.conf (an nginx that caches what
the app marks public and immutable) in front of that gunicorn.

    .venv/bin/python bench/bench_serve.py [--seconds 10] [--connections 16] [--json PATH]

Publishes two converted models into a temporary data directory (a
MobileNet-0.25 and a 16 MB dense model whose weights fill 4 MiB blobs),
starts Modelport as documented for production (gunicorn, 4 workers) and
nginx on loopback, and load-tests each URL with wrk for a bounded time,
alternating servers. Reports requests/s, MB/s, p50/p99 latency and the
ratio Modelport/nginx. Needs `nginx` and `wrk` (`make bench-serve` installs
them with apt).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

PROJECT_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NGINX_CONF = """
worker_processes 2;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    types {{ application/json json; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {storage};
        location / {{ add_header Cache-Control "public, max-age=31536000, immutable"; }}
    }}
}}
"""


def production_proxy_conf(work: Path, port: int, app_port: int) -> str:
    """deploy/nginx.conf, pointed at this run's gunicorn, port and cache."""
    conf = (PROJECT_DIR / "deploy" / "nginx.conf").read_text()
    cache = work / "proxy-cache"
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    conf = conf.replace("server web:8000;", f"server 127.0.0.1:{app_port};")
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    conf = conf.replace("/var/cache/nginx/modelport", str(cache)).replace("max_size=20g", "max_size=1g")
    conf = conf.replace("pid /tmp/nginx.pid;", f"pid {work}/proxy.pid;")
    return f"error_log {work}/proxy-error.log;\n" + conf


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def publish_models(env: dict, work: Path) -> dict:
    """Convert two tf-keras models and publish them as ready versions, as the
    worker would (same functions), in a child process with the bench's env."""
    script = f"""
import io, json, django
django.setup()
from pathlib import Path
import numpy as np, tf_keras as keras
from tensorflowjs.converters import converter
from converter import layout
from conversions.publish import store
from registry import services
from registry.models import Blob, Version
from django.contrib.auth import get_user_model

work = Path({str(work)!r})
user = get_user_model().objects.create_user("bench")
keras.utils.set_random_seed(1)
models = {{
    "mobilenet": keras.applications.MobileNet(weights=None, alpha=0.25, input_shape=(224, 224, 3)),
    "dense16mb": keras.Sequential([keras.Input((2048,)), keras.layers.Dense(2048), keras.layers.Dense(10)]),
}}
urls = {{}}
for name, model in models.items():
    model.save(work / f"{{name}}.h5")
    out = work / f"{{name}}-out"
    converter.dispatch_keras_h5_to_tfjs_layers_model_conversion(str(work / f"{{name}}.h5"), output_dir=str(out))
    layout.regroup(out, 4 * 1024 * 1024)
    registered = services.create_model(user, name)
    version = Version.objects.create(model=registered, number=1, status="ready", upload_name="m.h5",
        upload_size=1, upload_sha256="0", upload_key="u", output_format="layers-model")
    published = store(work, f"{{name}}-out", "layers-model", f"artifacts/{{version.uid}}/1/model.json", depth=1)
    version.model_json_key, version.model_json_sha256 = published.model_json_key, published.model_json_sha256
    version.blobs = published.blobs
    version.save()
    for blob in published.blobs:
        Blob.objects.get_or_create(model=registered, sha256=blob["sha256"], defaults={{"size": blob["size"]}})
    largest = max(published.blobs, key=lambda b: b["size"])
    urls[name] = {{"model_json": version.model_json_key, "blob": largest["sha256"], "blob_size": largest["size"]}}
print("URLS=" + json.dumps(urls))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise SystemExit(f"publishing the bench models failed:\n{done.stderr[-3000:]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("URLS="))
    return json.loads(line.removeprefix("URLS="))


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "B": 1}
TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(number) * TIME_UNITS[unit]


def run_wrk(url: str, seconds: int, connections: int, headers: tuple[str, ...] = ()) -> dict:
    done = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", *(f"-H{h}" for h in headers), url],
        capture_output=True, text=True, timeout=seconds + 30,
    )  # fmt: skip
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out:
        raise SystemExit(f"wrk failed on {url}:\n{out}\n{done.stderr}")
    if "Non-2xx" in out:
        raise SystemExit(f"wrk got error responses from {url}:\n{out}")
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "mb_per_s": float(transfer.group(1)) * UNITS[transfer.group(2)] / 1024**2,
        "p50_ms": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
        "p99_ms": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per URL and server")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is missing: run `make bench-serve` (installs nginx and wrk with apt)")

    work = Path(tempfile.mkdtemp(prefix="modelport-bench-serve-"))
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    var = work / "var"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "modelport.settings",
        "SECRET_KEY": "bench",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "MODELPORT_VAR_DIR": str(var),
        "S3_BUCKET": "",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TFDF_DISABLE_WELCOME_MESSAGE": "1",
    }
    env.pop("DATABASE_URL", None)
    processes: list[subprocess.Popen] = []
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=PROJECT_DIR, env=env, check=True)
        urls = publish_models(env, work)
        app_port, nginx_port = free_port(), free_port()
        processes.append(
            subprocess.Popen(
                [
                    str(BIN / "gunicorn"),
                    "modelport.wsgi",
                    "--bind",
                    f"127.0.0.1:{app_port}",
                    "--workers",
                    "4",
                    "--timeout",
                    "600",
                    "--log-level",
                    "warning",
                ],
                cwd=PROJECT_DIR,
                env=env,
                start_new_session=True,
            )  # fmt: skip
        )
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=work, port=nginx_port, storage=var / "storage"))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        processes.append(subprocess.Popen([nginx, "-c", str(conf), "-g", "daemon off;"], start_new_session=True))
        proxy_port = free_port()
        proxy_conf = work / "proxy.conf"
        proxy_conf.write_text(production_proxy_conf(work, proxy_port, app_port))
        processes.append(subprocess.Popen([nginx, "-c", str(proxy_conf), "-g", "daemon off;"], start_new_session=True))
        app, web = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{nginx_port}"
        proxy = f"http://127.0.0.1:{proxy_port}"
        wait_for(f"{app}/api/v1/models/")
        wait_for(f"{web}/")
        wait_for(f"{proxy}/api/v1/models/")

        targets = []
        for name, item in urls.items():
            path = f"/m/bench/{name}/1/model.json"
            targets.append((f"{name} model.json", path, f"{web}/{item['model_json']}"))
            label = f"{name} blob ({item['blob_size'] / 1024:.0f} KiB)"
            targets.append((label, f"/m/bench/{name}/blobs/{item['blob']}", f"{web}/blobs/sha256/{item['blob']}"))
        for _, path, nginx_url in targets:  # same bytes from all three
            theirs = requests.get(nginx_url)
            for base in (app, proxy):
                mine = requests.get(base + path)
                if mine.status_code != 200 or theirs.status_code != 200 or mine.content != theirs.content:
                    raise SystemExit(f"{base + path} ({mine.status_code}) and {nginx_url} differ")

        for _, path, _ in targets:  # fill the proxy cache with wrk's own request (its headers are the cache key)
            run_wrk(proxy + path, 1, 1)
        results = []
        for label, path, nginx_url in targets:
            measured = {"nginx": run_wrk(nginx_url, args.seconds, args.connections)}
            measured["gunicorn"] = run_wrk(app + path, args.seconds, args.connections)
            measured["production"] = run_wrk(proxy + path, args.seconds, args.connections)
            results.append({"target": label, **measured})
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nwrk -t2 -c{args.connections} -d{args.seconds}s, loopback, {os.cpu_count()} cores; nginx = static files; "
        "gunicorn = Modelport alone (4 workers, local disk); production = deploy/nginx.conf in front of it\n"
    )
    header = f"{'URL':34} {'server':10} {'req/s':>9} {'MB/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    print(header)
    print("-" * len(header))
    for row in results:
        for server in ("nginx", "gunicorn", "production"):
            m = row[server]
            print(
                f"{row['target']:34} {server:10} {m['requests_per_s']:9.0f} {m['mb_per_s']:9.1f} "
                f"{m['p50_ms']:8.2f} {m['p99_ms']:8.2f}"
            )
        for server in ("gunicorn", "production"):
            ratio_rps = row[server]["requests_per_s"] / row["nginx"]["requests_per_s"]
            ratio_mbs = row[server]["mb_per_s"] / row["nginx"]["mb_per_s"]
            print(f"{'':34} {server[:4] + '/nginx':10} {ratio_rps:9.2f} {ratio_mbs:9.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

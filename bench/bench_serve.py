"""Benchmark: Modelport serving model.json and weight blobs, against nginx
serving the very same files from the same disk, in the same run.

    .venv/bin/python bench/bench_serve.py [--seconds 10] [--connections 16]
        [--database-url postgres://…/empty_db] [--json PATH]

Publishes converted models into a temporary data directory (a
MobileNet-0.25 with an alias, a private copy read with a token and through
an access link, and a 16 MB dense model whose weights fill 4 MiB blobs)
and measures each URL with wrk for a bounded time on: nginx as a static
file server (the baseline), Modelport under gunicorn (4 sync workers, the
server used before), Modelport under deploy/web (granian, the production
server), and the production setup, deploy/nginx.conf in front of
deploy/web, both cold (a crowd loading a URL the front has not cached) and
warm. Reports requests/s, MB/s, p50/p99 latency and the ratios to nginx.
Needs `nginx` and `wrk` (`make bench-serve` installs them with apt).
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
    """deploy/nginx.conf, pointed at this run's app server, port, cache and upload buffer."""
    conf = (PROJECT_DIR / "deploy" / "nginx.conf").read_text()
    cache = work / "proxy-cache"
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    conf = conf.replace("server web:8000;", f"server 127.0.0.1:{app_port};")
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    conf = conf.replace("/var/cache/nginx/client_temp", str(work / "proxy-uploads"))
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
from registry import links, services
from registry.models import Alias, Blob, Version
from accounts.services import create_token
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
    Alias.objects.create(model=registered, name="production", version=version)
# What must reach the app: an alias (above), a private model read with a token and through an access link.
private = services.create_model(user, "private", public=False)
version = Version.objects.create(model=private, number=1, status="ready", upload_name="m.h5",
    upload_size=1, upload_sha256="0", upload_key="u", output_format="layers-model")
published = store(work, "mobilenet-out", "layers-model", f"artifacts/{{version.uid}}/1/model.json", depth=1)
version.model_json_key, version.model_json_sha256 = published.model_json_key, published.model_json_sha256
version.blobs = published.blobs
version.save()
urls["private"] = {{"model_json": version.model_json_key, "token": create_token(user, "bench", scope="read")[1],
                   "token_write": create_token(user, "bench-write")[1],
                   "link": links.url_path(links.mint(private, "1", 86400, [], user))}}
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


def wrk(url: str, seconds: int, connections: int, headers: tuple[str, ...] = ()) -> str:
    """wrk's report of ``url``; exits if wrk itself failed."""
    done = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", *(f"-H{h}" for h in headers), url],
        capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    if done.returncode != 0 or "Requests/sec" not in done.stdout:
        raise SystemExit(f"wrk failed on {url}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def run_wrk(url: str, seconds: int, connections: int, headers: tuple[str, ...] = ()) -> dict:
    out = wrk(url, seconds, connections, headers)
    if "Non-2xx" in out:
        raise SystemExit(f"wrk got error responses from {url}:\n{out}")
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "mb_per_s": float(transfer.group(1)) * UNITS[transfer.group(2)] / 1024**2,
        "p50_ms": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
        "p99_ms": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
    }


def bench_environment(var: Path, database_url: str | None, **extra: str) -> dict:
    """The app's environment for a benchmark: production settings, all state
    in ``var``, SQLite unless ``database_url``; nothing from the shell's
    S3_/MODELPORT_/CELERY_ variables."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("S3_", "MODELPORT_", "CELERY_"))},
        "DJANGO_SETTINGS_MODULE": "modelport.settings",
        "SECRET_KEY": "bench",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "MODELPORT_VAR_DIR": str(var),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TFDF_DISABLE_WELCOME_MESSAGE": "1",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        **extra,
    }
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def stop_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    with log.open("ab") as handle:
        return subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per URL and server")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--database-url", help="an empty database to use (e.g. PostgreSQL, as in production); default SQLite"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is missing: run `make bench-serve` (installs nginx and wrk with apt)")

    work = Path(tempfile.mkdtemp(prefix="modelport-bench-serve-"))
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    var = work / "var"
    env = bench_environment(var, args.database_url)
    processes: list[subprocess.Popen] = []
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=PROJECT_DIR, env=env, check=True)
        urls = publish_models(env, work)
        gunicorn_port, app_port, nginx_port, proxy_port = (free_port() for _ in range(4))
        gunicorn = [str(BIN / "gunicorn"), "modelport.wsgi", "--bind", f"127.0.0.1:{gunicorn_port}",
                    "--workers", "4", "--timeout", "600", "--log-level", "warning"]  # fmt: skip
        processes.append(start(gunicorn, env, work / "gunicorn.log"))
        web_env = {**env, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(app_port)}
        processes.append(start([str(PROJECT_DIR / "deploy" / "web")], web_env, work / "web.log"))
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=work, port=nginx_port, storage=var / "storage"))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        processes.append(start([nginx, "-c", str(conf), "-g", "daemon off;"], env, work / "nginx.log"))
        proxy_conf = work / "proxy.conf"
        proxy_conf.write_text(production_proxy_conf(work, proxy_port, app_port))
        processes.append(start([nginx, "-c", str(proxy_conf), "-g", "daemon off;"], env, work / "proxy.log"))
        servers = {
            "gunicorn": f"http://127.0.0.1:{gunicorn_port}",
            "granian": f"http://127.0.0.1:{app_port}",
            "production": f"http://127.0.0.1:{proxy_port}",
        }
        web = f"http://127.0.0.1:{nginx_port}"
        for base in servers.values():
            wait_for(f"{base}/api/v1/models/")
        wait_for(f"{web}/")

        # (label, path on Modelport, the same file from static nginx, wrk headers)
        targets = []
        for name in ("mobilenet", "dense16mb"):
            item = urls[name]
            nginx_json = f"{web}/{item['model_json']}"
            targets.append((f"{name} model.json", f"/m/bench/{name}/1/model.json", nginx_json, ()))
            label = f"{name} blob ({item['blob_size'] / 1024:.0f} KiB)"
            blob = item["blob"]
            targets.append((label, f"/m/bench/{name}/blobs/{blob}", f"{web}/blobs/sha256/{blob}", ()))
        # What a cache may not keep: these reach the app through the front too.
        private = urls["private"]
        nginx_json = f"{web}/{urls['mobilenet']['model_json']}"
        reach_app = [
            ("mobilenet alias model.json", "/m/bench/mobilenet/production/model.json", nginx_json, ()),
            ("private model.json, token", "/m/bench/private/1/model.json", f"{web}/{private['model_json']}",
             (f"Authorization: Token {private['token']}",)),
            ("private model.json, link", private["link"], f"{web}/{private['model_json']}", ()),
        ]  # fmt: skip
        for _, path, nginx_url, headers in targets + reach_app:  # the same bytes from all
            theirs = requests.get(nginx_url)
            for base in servers.values():
                mine = requests.get(base + path, headers=dict(h.split(": ", 1) for h in headers))
                if mine.status_code != 200 or theirs.status_code != 200 or mine.content != theirs.content:
                    raise SystemExit(f"{base + path} ({mine.status_code}) and {nginx_url} differ")

        results = []
        for label, path, nginx_url, headers in targets + reach_app:
            # Cold: the first crowd loading a URL the front has not cached
            # (a new Origin is a new cache key), then warm, from its cache.
            measured = {"nginx": run_wrk(nginx_url, args.seconds, args.connections)}
            for server, base in servers.items():
                if server == "production" and (label, path, nginx_url, headers) in targets:
                    cold = (*headers, f"Origin: https://cold-{len(results)}.example")
                    measured["production cold"] = run_wrk(base + path, args.seconds, args.connections, cold)
                    run_wrk(base + path, 1, 2, headers)  # fill the cache with wrk's own request (its cache key)
                measured[server] = run_wrk(base + path, args.seconds, args.connections, headers)
            results.append({"target": label, "reaches_app": (label, path, nginx_url, headers) in reach_app, **measured})
    finally:
        stop_all(processes)
        shutil.rmtree(work, ignore_errors=True)
    report(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(results: list[dict], args) -> None:
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"\nwrk -t2 -c{args.connections} -d{args.seconds}s, loopback, {os.cpu_count()} cores, {database}; "
        "nginx = static files; gunicorn = Modelport under gunicorn (4 sync workers); granian = Modelport under "
        "deploy/web (the production server); production = deploy/nginx.conf in front of granian "
        "(cold: the first load of a URL by a crowd)\n"
    )
    header = f"{'URL':30} {'server':16} {'req/s':>9} {'MB/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'×nginx':>7} {'p99×':>6}"
    print(header)
    print("-" * len(header))
    for row in results:
        base = row["nginx"]
        for server in ("nginx", "gunicorn", "granian", "production cold", "production"):
            if server not in row:
                continue
            m = row[server]
            ratio = m["mb_per_s"] / base["mb_per_s"]
            print(
                f"{row['target']:30} {server:16} {m['requests_per_s']:9.0f} {m['mb_per_s']:9.1f} "
                f"{m['p50_ms']:8.2f} {m['p99_ms']:8.2f} {ratio:7.2f} {m['p99_ms'] / base['p99_ms']:6.1f}"
            )


if __name__ == "__main__":
    main()

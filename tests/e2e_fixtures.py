"""Real parts for end-to-end tests: a Celery worker process, an S3-protocol
server (moto), the Django live server and TF.js in Node."""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import requests
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection

PROJECT_DIR = Path(__file__).resolve().parent.parent
PREDICT_JS = PROJECT_DIR / "converter" / "js" / "predict.mjs"
S3_BUCKET = "modelport-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Backend:
    name: str
    storages: dict
    worker_env: dict = field(default_factory=dict)


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def s3_storages(endpoint: str) -> dict:
    from botocore.config import Config

    options = {
        "bucket_name": S3_BUCKET,
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "access_key": "test",
        "secret_key": "test",
        "file_overwrite": True,
        "default_acl": None,
        "querystring_auth": False,
        "client_config": Config(
            request_checksum_calculation="when_required", response_checksum_validation="when_required"
        ),
    }
    return {**django_settings.STORAGES, "models": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}}


@pytest.fixture(scope="session", params=["disk", "s3"])
def backend(request, tmp_path_factory) -> Backend:
    if request.param == "disk":
        location = tmp_path_factory.mktemp("disk-storage")
        storages = {
            **django_settings.STORAGES,
            "models": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(location)},
            },
        }
        return Backend("disk", storages, {"MODELPORT_STORAGE_DIR": str(location), "S3_BUCKET": ""})
    endpoint = request.getfixturevalue("s3_endpoint")
    env = {
        "S3_BUCKET": S3_BUCKET,
        "S3_ENDPOINT_URL": endpoint,
        "S3_ACCESS_KEY_ID": "test",
        "S3_SECRET_ACCESS_KEY": "test",
        "S3_REGION": "us-east-1",
    }
    return Backend("s3", s3_storages(endpoint), env)


@pytest.fixture(scope="session")
def worker_sandbox(tmp_path_factory):
    """This test process's own converter sandbox, as a worker has it, for
    tests that run the conversion service in-process."""
    from conversions import sandbox

    box = sandbox.Sandbox(tmp_path_factory.mktemp("sandbox") / "sandbox-tests", 100)
    previous, sandbox._sandbox = sandbox._sandbox, box
    yield box
    box.stop()
    sandbox._sandbox = previous


@pytest.fixture(scope="session")
def celery_worker_process(backend, django_db_setup, django_db_blocker, tmp_path_factory):
    """A real `celery worker` process on the test database and `backend`."""
    with django_db_blocker.unblock():
        url = database_url()
    log_path = tmp_path_factory.mktemp("worker") / f"worker-{backend.name}.log"
    # No stalled-job sweeps from this shared worker: tests that kill workers
    # run their own, and must not have jobs taken from under them.
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MODELPORT_CONVERSION_RECOVERY_INTERVAL": "3600",
        "MODELPORT_BROWSER_BACKENDS": "",  # checked in tests/test_browser_backends.py
        # Webhook receivers in tests listen on loopback; retries come fast.
        "MODELPORT_WEBHOOKS_ALLOW_PRIVATE": "loopback",
        "MODELPORT_WEBHOOK_RETRY_BASE_SECONDS": "1",
        **backend.worker_env,
    }
    process = start_worker(env, log_path, django_settings.CELERY_TASK_DEFAULT_QUEUE, f"test-{backend.name}", purge=True)
    yield process, log_path
    stop_worker(process)


def start_worker(env: dict, log_path: Path, queue: str, name: str, purge: bool = False) -> subprocess.Popen:
    """Start `celery worker` and wait until it is ready to take jobs."""
    command = [
        sys.executable, "-m", "celery", "-A", "modelport", "worker", "--pool=solo", "--concurrency=1",
        "-l", "info", "-Q", queue, "-n", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    if purge:  # drop messages left by an aborted earlier run
        command.append("--purge")
    with log_path.open("ab") as log:
        offset = log.tell()
        process = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while b" ready." not in log_path.read_bytes()[offset:]:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"celery worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    return process


def stop_worker(process: subprocess.Popen) -> None:
    """Stop a worker (or any server process a test started, the web server too):
    SIGTERM, then SIGKILL if it has not exited within 20 s. A process that
    has already exited is left as it is (Popen signals only a live one)."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Registry:
    """The running service as a client sees it."""

    url: str
    backend: Backend
    worker_log: Path

    def api(self, token: str | None = None) -> requests.Session:
        session = requests.Session()
        if token:
            session.headers["Authorization"] = f"Token {token}"
        return session

    def wait_final(self, session: requests.Session, owner: str, name: str, number: int, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            version = session.get(f"{self.url}/api/v1/models/{owner}/{name}/versions/{number}/").json()
            if version["status"] in ("ready", "failed"):
                return version
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"version stuck in {version['status']}; worker log:\n{self.worker_log.read_text()[-3000:]}"
                )
            time.sleep(0.5)


@pytest.fixture
def registry(celery_worker_process, backend, live_server, transactional_db, settings) -> Registry:
    settings.STORAGES = backend.storages
    if backend.name == "s3":
        settings.S3_CORS_ORIGINS = ["*"]
        call_command("s3cors")
    return Registry(live_server.url, backend, celery_worker_process[1])


def _dtype(array: np.ndarray) -> str:
    return "int32" if np.issubdtype(array.dtype, np.integer) else "float32"


def tfjs_predict(
    model_url: str,
    kind: str,
    inputs: list[np.ndarray],
    tmp_path: Path,
    headers: dict | None = None,
    outputs: list[str] | None = None,
) -> list[np.ndarray]:
    """Load a served model with @tensorflow/tfjs in Node and run it (graph
    models: optionally asking for the named nodes ``outputs``)."""
    spec = {"inputs": [{"shape": list(x.shape), "data": x.ravel().tolist(), "dtype": _dtype(x)} for x in inputs]}
    if outputs:
        spec["outputs"] = outputs
    inputs_path = tmp_path / "tfjs-inputs.json"
    inputs_path.write_text(json.dumps(spec))
    command = ["node", str(PREDICT_JS), "--url", model_url, "--kind", kind, "--inputs", str(inputs_path)]
    for name, value in (headers or {}).items():
        command += ["--header", f"{name}: {value}"]
    done = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    return [np.asarray(out["data"], dtype=np.float32).reshape(out["shape"]) for out in result["outputs"]]


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip


def signed_in_page(context, base_url: str, username: str, password: str):
    """A page of ``context`` signed in through the login form, and the list
    its uncaught JavaScript errors go to."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.get_by_role("button", name="Sign in").click()
    return page, errors


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="session")
def app_origin(tmp_path_factory):
    """A static web app served from its own origin (127.0.0.1, another port)."""
    root = tmp_path_factory.mktemp("webapp")
    for page in (PROJECT_DIR / "tests" / "browser_app").glob("*.[hj][ts]*"):  # the pages and their scripts
        shutil.copy(page, root / page.name)
    # The libraries as apps load them, from the npm packages.
    for library in (
        "@tensorflow/tfjs/dist/tf.min.js",
        "@teachablemachine/image/dist/teachablemachine-image.min.js",
        "ml5/dist/ml5.min.js",
    ):
        shutil.copy(PROJECT_DIR / "node_modules" / library, root / library.rsplit("/", 1)[-1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()

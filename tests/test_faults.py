"""Faults, nothing lost (issue 12 §5): the S3 server going down in the middle
of a publish, Redis killed with jobs queued, PostgreSQL restarted under a
running web process. Every part is a real process of the test's own
(moto_server, redis-server, a PostgreSQL cluster, the web server, a Celery worker)
and every fault is a real one: connections refused and cut, a server killed."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urljoin

import boto3
import psutil
import pytest
import requests

from registry.models import Version
from tests import zoo
from tests.e2e_fixtures import PROJECT_DIR, database_url, free_port, start_worker, stop_worker
from tests.fault_servers import BIN, PostgresCluster, RedisServer, SwitchableProxy, Web, wait_until
from tests.tokens import api_token
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e

BUCKET = "modelport-faults"


class Rig:
    """Web processes and workers on a private queue, the test database and
    alice's token; the environment of each process is ``env`` plus overrides."""

    def __init__(self, tmp_path: Path, token: str):
        self.token = token
        self.queue = f"faults-{uuid.uuid4().hex[:8]}"
        self.log = tmp_path / "processes.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_QUEUE": self.queue,
            "MODELPORT_STORAGE_DIR": str(tmp_path / "storage"),
            "S3_BUCKET": "",
            "MODELPORT_SCRATCH_DIR": str(tmp_path / "scratch"),
            "MODELPORT_BROWSER_BACKENDS": "",
            # No stalled-job sweep unless a test asks for one: jobs reach the worker through the broker.
            "MODELPORT_CONVERSION_RECOVERY_INTERVAL": "3600",
            "MODELPORT_WEBHOOKS_ALLOW_PRIVATE": "loopback",
            "MODELPORT_WEBHOOK_RETRY_BASE_SECONDS": "1",
        }
        self.webs: list[Web] = []
        self.workers: list[subprocess.Popen] = []

    def web(self, **env: str) -> Web:
        self.webs.append(Web({**self.env, **env}, self.log, self.token))
        return self.webs[-1]

    def worker(self, **env: str) -> subprocess.Popen:
        self.workers.append(start_worker({**self.env, **env}, self.log, self.queue, "faults"))
        return self.workers[-1]

    def close(self) -> None:
        for web in self.webs:
            web.close()
        for worker in self.workers:
            stop_worker(worker)
        self.webs, self.workers = [], []


@pytest.fixture
def rig(transactional_db, owner, tmp_path):
    rig = Rig(tmp_path, api_token(owner))
    yield rig
    rig.close()


@pytest.fixture(scope="module")
def cnn(tmp_path_factory) -> Path:
    return zoo.keras2_cnn_h5(tmp_path_factory.mktemp("faults-zoo")).path


def version_events(receiver: Receiver) -> list[tuple[str, int]]:
    """The (event, version number) pairs the webhook receiver heard, sorted."""
    heard = [event["payload"] for event in receiver.received]
    return sorted((payload["type"], payload["data"]["version"]["number"]) for payload in heard)


# --- 1. The S3 server down during a publish -----------------------------------


@pytest.fixture
def s3(tmp_path):
    """moto_server in its own process, with a bucket, and a switchable proxy
    in front of it: the app reaches S3 only through the proxy, the test
    looks at what is stored directly."""
    port = free_port()
    with (tmp_path / "moto.log").open("ab") as log:
        server = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, 30, "moto_server starting", (tmp_path / "moto.log",))
    client.create_bucket(Bucket=BUCKET)
    proxy = SwitchableProxy(port)
    yield client, proxy
    proxy.off()
    server.kill()  # nothing it holds is needed any more
    server.wait()


def stored(client) -> dict[str, bytes]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {key: client.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def weight_keys(model_json: bytes) -> list[str]:
    """The blob keys a stored model.json points at (``../blobs/<sha256>``)."""
    document = json.loads(model_json)
    paths = [path for group in document["weightsManifest"] for path in group["paths"]]
    return [f"blobs/sha256/{path.rsplit('/', 1)[-1]}" for path in paths]


def test_s3_down_in_the_middle_of_a_publish_is_retried_and_the_version_ends_ready_once(rig, s3, cnn):
    client, proxy = s3
    s3_env = {
        "S3_BUCKET": BUCKET,
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}",
        "S3_ACCESS_KEY_ID": "test",
        "S3_SECRET_ACCESS_KEY": "test",
        "MODELPORT_CONVERSION_RETRY_BASE_SECONDS": "2",  # retries 2 s, then 4 s after a failed attempt
    }
    web = rig.web(**s3_env)
    web.create_model("cnn")
    receiver = web.listen("cnn")
    # S3 goes down as it answers the PUT of the first model.json (the weights
    # went before it): the object is stored, the worker never gets the answer.
    proxy.trip = re.compile(rb"^PUT /%s/artifacts/\S+/model\.json " % BUCKET.encode(), re.M)
    rig.worker(**s3_env)
    assert web.upload("cnn", cnn) == 1
    assert proxy.tripped.wait(120), rig.log.read_text()[-3000:]

    # S3 stays down through the retry (which cannot even read the upload):
    # the job is given back each time, never shown ready or failed.
    retried = ("pending", 2)
    given_back = web.wait(
        "cnn", 1, lambda v: (v["status"], v["attempts"]) == retried, ("pending", "converting"), (rig.log,)
    )
    assert given_back["error"] == ""
    assert requests.get(f"{web.url}/m/alice/cnn/1/model.json", timeout=30).status_code == 404
    proxy.on()  # before the third and last attempt the default budget allows

    version = web.wait("cnn", 1, lambda v: v["status"] == "ready", ("pending", "converting"), (rig.log,))
    assert version["attempts"] == 3 and version["parity"]["passed"] is True
    row = Version.objects.get(model__name="cnn", number=1)
    assert row.model_json_key == f"artifacts/{row.uid}/3/model.json"

    # What users load is whole: model.json as stored, every weight file it names.
    served = requests.get(version["model_url"], timeout=30)
    assert served.status_code == 200
    objects = stored(client)
    assert served.content == objects[row.model_json_key]
    for path in [p for group in served.json()["weightsManifest"] for p in group["paths"]]:
        blob = requests.get(urljoin(version["model_url"], path), timeout=30)
        assert blob.status_code == 200 and hashlib.sha256(blob.content).hexdigest() == path.rsplit("/", 1)[-1]
    # Nothing half-published: every model.json in the bucket has all its
    # blobs; one written by the cut-off attempt is referenced by no version.
    model_jsons = {key for key in objects if key.endswith("model.json")}
    for key in model_jsons:
        assert all(blob in objects for blob in weight_keys(objects[key])), key
    assert model_jsons - {row.model_json_key} == {f"artifacts/{row.uid}/1/model.json"}  # stored, never answered

    # Exactly once: one version.ready event, and nothing left to convert it again.
    wait_until(lambda: receiver.received, 60, "the version.ready webhook", (rig.log,))
    assert version_events(receiver) == [("version.ready", 1)]
    assert web.version("cnn", 1)["attempts"] == 3


# --- 2. Redis killed with jobs queued -----------------------------------------


@pytest.fixture
def redis_dir(tmp_path) -> Path:
    directory = tmp_path / "redis"
    directory.mkdir()
    return directory


def test_jobs_queued_when_redis_is_killed_survive_in_its_append_only_file(rig, redis_dir, cnn):
    broker = RedisServer(redis_dir, persistent=True)
    try:
        web = rig.web(CELERY_BROKER_URL=broker.url)
        web.create_model("cnn")
        receiver = web.listen("cnn")
        numbers = [web.upload("cnn", cnn) for _ in range(3)]  # no worker runs yet
        assert broker.queued(rig.queue) == 3

        broker.kill_and_restart()
        assert broker.queued(rig.queue) == 3  # the broker kept them
        numbers.append(web.upload("cnn", cnn))  # the same web process, reconnected
        assert broker.queued(rig.queue) == 4

        rig.worker(CELERY_BROKER_URL=broker.url)  # no sweep: only the broker delivers
        for number in numbers:
            version = web.wait("cnn", number, lambda v: v["status"] == "ready", ("pending", "converting"), (rig.log,))
            assert version["attempts"] == 1
        wait_until(lambda: len(receiver.received) >= 4, 60, "four version.ready webhooks", (rig.log,))
        wait_until(lambda: broker.drained(rig.queue), 60, "the queue draining", (rig.log,))
        assert version_events(receiver) == [("version.ready", n) for n in numbers]
        assert [web.version("cnn", n)["attempts"] for n in numbers] == [1, 1, 1, 1]
    finally:
        rig.close()  # while the broker still answers
        broker.close()


def test_jobs_a_redis_without_persistence_loses_are_sent_again_by_the_recovery_sweep(rig, redis_dir, cnn):
    broker = RedisServer(redis_dir, persistent=False)
    try:
        web = rig.web(CELERY_BROKER_URL=broker.url)
        web.create_model("cnn")
        receiver = web.listen("cnn")
        numbers = [web.upload("cnn", cnn) for _ in range(2)]
        assert broker.queued(rig.queue) == 2

        broker.kill_and_restart()
        assert broker.queued(rig.queue) == 0  # the broker lost them: only the database knows

        rig.worker(
            CELERY_BROKER_URL=broker.url,
            MODELPORT_CONVERSION_RECOVERY_INTERVAL="1",
            MODELPORT_CONVERSION_PENDING_RESEND_SECONDS="1",
        )
        for number in numbers:
            version = web.wait("cnn", number, lambda v: v["status"] == "ready", ("pending", "converting"), (rig.log,))
            assert version["attempts"] == 1
        log = rig.log.read_text()
        for number in numbers:
            pk = Version.objects.get(model__name="cnn", number=number).pk
            assert f"re-queueing stalled conversion of version {pk}" in log
        wait_until(lambda: len(receiver.received) >= 2, 60, "two version.ready webhooks", (rig.log,))
        wait_until(lambda: broker.drained(rig.queue), 60, "the queue draining", (rig.log,))
        # The sweep may send a job twice; it is converted once all the same.
        assert version_events(receiver) == [("version.ready", n) for n in numbers]
        assert [web.version("cnn", n)["attempts"] for n in numbers] == [1, 1]
    finally:
        rig.close()  # while the broker still answers
        broker.close()


# --- 3. PostgreSQL restarted under a running web process ------------------------


@pytest.fixture
def postgres():
    cluster = PostgresCluster()
    yield cluster
    cluster.close()


def test_the_web_process_answers_again_after_postgresql_restarts_without_restarting(postgres, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": postgres.url,
        "CELERY_QUEUE": f"faults-{uuid.uuid4().hex[:8]}",
        "MODELPORT_STORAGE_DIR": str(tmp_path / "storage"),
        "S3_BUCKET": "",
    }

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    manage("migrate", "--verbosity", "0")
    token = manage("apitoken", "alice").strip().splitlines()[-1]
    web = Web(env, tmp_path / "web.log", token)
    try:
        web.create_model("before")
        worker = psutil.Process(web.process.pid).children()
        assert len(worker) == 1

        postgres.restart()  # the web process's database connection is gone
        answers = [web.api.get(f"{web.url}/api/v1/models/", timeout=30) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200], answers[0].text
        assert [m["name"] for m in answers[0].json()] == ["before"]
        web.create_model("after")
        assert web.api.get(f"{web.url}/api/v1/models/alice/after/", timeout=30).status_code == 200
        assert psutil.Process(web.process.pid).children() == worker  # the same process served them
    finally:
        web.close()

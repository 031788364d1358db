"""Servers of a test's own that it can break: the app under its production web server (deploy/web), a TCP
proxy that can play a server going down, redis-server that can be killed, a
PostgreSQL cluster that can be restarted (tests/test_faults.py)."""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import requests

from tests.e2e_fixtures import PROJECT_DIR, free_port, stop_worker
from tests.webhook_receiver import Receiver

BIN = Path(sys.executable).parent


def wait_until(check: Callable[[], object], timeout: float, what: str, logs: tuple[Path, ...] = ()):
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log.name}:\n{log.read_text()[-3000:]}" for log in logs if log.exists())
            raise AssertionError(f"{what} did not happen within {timeout}s\n{tails}")
        time.sleep(0.05)
    return result


class Web:
    """The production web server (deploy/web) with one worker and one
    thread, so that every request is served by the same process (and its
    kept database connection), and alice's API session with it."""

    def __init__(self, env: dict, log: Path, token: str):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        env = {
            **env, "PATH": f"{BIN}:{env.get('PATH', '')}", "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port),
            "WEB_WORKERS": "1", "WEB_THREADS": "1",
        }  # fmt: skip
        with log.open("ab") as handle:
            self.process = subprocess.Popen(
                [str(PROJECT_DIR / "deploy" / "web")], cwd=PROJECT_DIR, env=env, stdout=handle, stderr=subprocess.STDOUT
            )
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Token {token}"
        self.receivers: list[Receiver] = []
        wait_until(self._answers, 60, "the web server starting", (log,))

    def close(self) -> None:
        stop_worker(self.process)
        for receiver in self.receivers:
            receiver.close()

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the web server exited:\n{self.log.read_text()[-3000:]}")
        try:
            return requests.get(f"{self.url}/api/v1/models/", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    def create_model(self, name: str) -> None:
        response = self.api.post(f"{self.url}/api/v1/models/", json={"name": name, "public": True}, timeout=30)
        assert response.status_code == 201, response.text

    def listen(self, name: str) -> Receiver:
        """A webhook receiver for the model's version events."""
        receiver = Receiver()
        self.receivers.append(receiver)
        response = self.api.post(
            f"{self.url}/api/v1/models/alice/{name}/webhooks/",
            json={"url": receiver.url, "events": ["version.ready", "version.failed"]},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        receiver.secret = response.json()["secret"]
        return receiver

    def upload(self, name: str, path: Path) -> int:
        with path.open("rb") as handle:
            response = self.api.post(
                f"{self.url}/api/v1/models/alice/{name}/versions/", files={"file": (path.name, handle)}, timeout=60
            )
        assert response.status_code == 202, response.text
        return response.json()["number"]

    def version(self, name: str, number: int) -> dict:
        response = self.api.get(f"{self.url}/api/v1/models/alice/{name}/versions/{number}/", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, name: str, number: int, until: Callable[[dict], bool], allowed: tuple[str, ...], logs=()) -> dict:
        """Poll the version until ``until``; every status seen on the way must be ``allowed``."""

        def reached():
            version = self.version(name, number)
            assert version["status"] in allowed or until(version), (version["status"], version["error"])
            return version if until(version) else None

        return wait_until(reached, 180, f"version {number} of {name} reaching the expected state", logs)


def _cut(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class SwitchableProxy:
    """A TCP proxy in front of a server that the test switches off and on:
    while off, connections are refused and those open are cut, as when the
    server is down; the server itself (and what it stored) stays. Armed with
    ``trip``, it switches itself off the moment the server answers the first
    request matching it: the server has the request, the client never hears."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.trip: re.Pattern[bytes] | None = None
        self.tripped = threading.Event()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self.on()

    def on(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.1)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def off(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._open = self._open, set()
        if listener is not None:
            _cut(listener)
        for sock in sockets:
            _cut(sock)

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        client.settimeout(None)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            _cut(client)
            return
        with self._lock:
            if self._listener is None:  # switched off meanwhile
                _cut(client)
                _cut(upstream)
                return
            self._open |= {client, upstream}
        answered = threading.Event()
        threading.Thread(target=self._pump, args=(client, upstream, answered, True), daemon=True).start()
        self._pump(upstream, client, answered, False)

    def _pump(self, source: socket.socket, target: socket.socket, armed: threading.Event, to_server: bool) -> None:
        try:
            while data := source.recv(65536):
                if to_server and self.trip is not None and self.trip.search(data):
                    self.trip = None
                    armed.set()
                elif not to_server and armed.is_set():
                    if re.fullmatch(rb"(HTTP/1\.1 100 [^\r\n]*\r\n\r\n)+", data):  # "send the body", not the answer
                        target.sendall(data)
                        continue
                    self.tripped.set()
                    self.off()
                    return
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {source, target}
            _cut(source)
            _cut(target)


class RedisServer:
    """redis-server on a free port; ``persistent`` as docker-compose.yml
    configures it (append-only file), else as .ci/run does (nothing kept)."""

    def __init__(self, directory: Path, persistent: bool):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = directory / "redis.log"
        save = ["--appendonly", "yes" if persistent else "no", "--save", ""]
        self.command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(directory), *save]
        self.client = redis.Redis(port=self.port)
        self.process = self._start()

    def _start(self) -> subprocess.Popen:
        with self.log.open("ab") as log:
            process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)

        def answers() -> bool:
            try:
                return self.client.ping()
            except redis.ConnectionError:
                return False

        wait_until(answers, 30, "redis-server starting", (self.log,))
        return process

    def kill_and_restart(self) -> None:
        """kill -9 (a crash, not a clean shutdown), then start it again on the same files."""
        if self.client.info("persistence")["aof_enabled"]:
            # What Redis has acknowledged is written to the append-only file
            # (handed to the kernel: a killed process loses none of it).
            wait_until(lambda: self.client.info("persistence")["aof_buffer_length"] == 0, 10, "the AOF write")
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.client.connection_pool.disconnect()
        self.process = self._start()

    def queued(self, queue: str) -> int:
        return self.client.llen(queue)

    def drained(self, queue: str) -> bool:
        """No message waiting, none taken and unacknowledged."""
        return self.client.llen(queue) == 0 and self.client.hlen("unacked") == 0

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


class PostgresCluster:
    """A PostgreSQL cluster of the test's own in a temporary directory, run
    by the postgres user when the test runs as root (initdb refuses root)."""

    def __init__(self):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            pytest.fail("PostgreSQL's server binaries are missing (apt: postgresql)")
        self.bin = Path(found[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="modelport-faults-pg-"))
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.url = f"postgres://modelport@127.0.0.1:{self.port}/postgres"
        data = self.dir / "data"
        self._run("initdb", "-D", data, "-U", "modelport", "-A", "trust", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", data, "-l", self.dir / "server.log", "-o", options, "-w", "start")

    def _run(self, program: str, *args) -> None:
        command = [*self.as_owner, str(self.bin / program), *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr

    def restart(self) -> None:
        self._run("pg_ctl", "-D", self.dir / "data", "-l", self.dir / "server.log", "-m", "fast", "-w", "restart")

    def close(self) -> None:
        self._run("pg_ctl", "-D", self.dir / "data", "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir)

"""Download counts stay right behind the production nginx front, which
answers numbered model.json URLs from its cache: the front logs every
model.json it answers (deploy/nginx.conf), `manage.py downloads_from_log`
counts those lines, and the app, told by the front, counts none itself. The
last test runs the real nginx with deploy/nginx.conf in front of the app."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from django.core.management import call_command

from registry import download_log, downloads
from registry.models import DownloadDay
from tests.e2e_fixtures import PROJECT_DIR, free_port
from tests.test_serving import make_ready_version

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NOW = 1796212800.123  # 2026-12-02 12:00 UTC


def counts() -> dict[int, int]:
    """Loads per version number, all days together."""
    total: dict[int, int] = {}
    for row in DownloadDay.objects.select_related("version"):
        total[row.version.number] = total.get(row.version.number, 0) + row.count
    return total


def line(path: str, status: int = 200, when: float = NOW) -> str:
    return f"{when:.3f} {status} {path}\n"


def test_the_log_format_the_front_writes_is_the_one_read():
    conf = (PROJECT_DIR / "deploy" / "nginx.conf").read_text()
    assert "log_format modelport_downloads '$msec $status $uri';" in conf
    assert 'proxy_set_header X-Modelport-Counted-By-Front "1";' in conf
    assert (
        "access_log /var/cache/nginx/modelport-downloads.log modelport_downloads buffer=64k flush=1s"
        " if=$modelport_download;"
    ) in conf
    assert "MODELPORT_DOWNLOADS_COUNTED_BY_FRONT" in (PROJECT_DIR / "docker-compose.yml").read_text()


@pytest.mark.django_db
def test_behind_a_counting_front_the_app_counts_nothing_itself(anon_client, public_model, settings):
    make_ready_version(public_model, 1)
    front = {"HTTP_X_MODELPORT_COUNTED_BY_FRONT": "1"}
    settings.DOWNLOADS_COUNTED_BY_FRONT = True
    assert anon_client.get("/m/alice/digits/1/model.json", **front).status_code == 200
    assert downloads.flush() == 0
    assert anon_client.get("/m/alice/digits/1/model.json").status_code == 200  # straight to the app: counted
    settings.DOWNLOADS_COUNTED_BY_FRONT = False  # a client's header is not trusted without a counting front
    assert anon_client.get("/m/alice/digits/1/model.json", **front).status_code == 200
    assert downloads.flush() == 2


@pytest.mark.django_db
def test_logged_loads_are_counted_once_each_and_only_loads(public_model, owner_client, tmp_path):
    make_ready_version(public_model, 1)
    make_ready_version(public_model, 2)
    owner_client.put("/api/v1/models/alice/digits/aliases/production/", {"version": 1}, format="json")
    log = tmp_path / "downloads.log"
    log.write_text(
        line("/m/alice/digits/1/model.json")
        + line("/m/alice/digits/1/model.json", 304)  # a revalidation is a load
        + line("/m/alice/digits/production/model.json")
        + line("/m/alice/digits/latest/uint8/model.json")
        + line("/m/alice/digits/2/cut/dense/model.json")
        + line("/m/alice/digits/1/model.json", 404)
        + line("/m/alice/digits/9/model.json")  # no such version
        + line("/m/alice/nothing/1/model.json")
        + line("/m/alice/digits/1/metadata.json")
        + "garbage\n"
    )
    assert download_log.ingest(log) == 5
    assert counts() == {1: 3, 2: 2}
    assert DownloadDay.objects.first().day.isoformat() == "2026-12-02"
    assert download_log.ingest(log) == 0  # read once

    with log.open("a") as handle:
        handle.write(line("/m/alice/digits/2/model.json") + "1796300001.0 200 /m/alice/digits/2/mod")  # half a line
    assert download_log.ingest(log) == 1
    with log.open("a") as handle:
        handle.write("el.json\n")
    assert download_log.ingest(log) == 1  # the line, once it is whole
    assert counts() == {1: 3, 2: 4}

    log.unlink()  # rotated: a new file, read from its start
    log.write_text(line("/m/alice/digits/1/model.json"))
    assert download_log.ingest(log) == 1
    state = tmp_path / "elsewhere.offset"
    call_command("downloads_from_log", str(log), "--state", str(state))
    assert counts() == {1: 5, 2: 4}  # a fresh state file starts over, as documented
    assert state.exists()


@pytest.fixture
def front(live_server, tmp_path):
    """The real nginx, configured by deploy/nginx.conf, in front of the app."""
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: `make test` installs it (apt: nginx-light)")
    work = tmp_path / "front"
    work.mkdir()
    work.chmod(0o777)
    port, app_port = free_port(), live_server.url.rsplit(":", 1)[1]
    conf = (PROJECT_DIR / "deploy" / "nginx.conf").read_text()
    replaced = {
        "server web:8000;": f"server 127.0.0.1:{app_port};",
        "listen 8080;": f"listen 127.0.0.1:{port};",
        "/var/cache/nginx/modelport-downloads.log": str(work / "downloads.log"),
        "/var/cache/nginx/client_temp": str(work / "uploads"),
        "/var/cache/nginx/modelport": str(work / "cache"),
        "pid /tmp/nginx.pid;": f"pid {work}/nginx.pid;",
    }
    for old, new in replaced.items():
        assert old in conf, old
        conf = conf.replace(old, new)
    (work / "nginx.conf").write_text(f"error_log {work}/error.log;\n" + conf)
    user = "user root;\n" if os.geteuid() == 0 else ""
    (work / "nginx.conf").write_text(user + (work / "nginx.conf").read_text())
    process = subprocess.Popen([NGINX, "-c", str(work / "nginx.conf"), "-g", "daemon off;"], start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    yield url, work / "downloads.log"
    process.terminate()
    process.wait(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_loads_the_front_answers_from_its_cache_are_counted(front, public_model, settings):
    settings.DOWNLOADS_COUNTED_BY_FRONT = True
    make_ready_version(public_model, 1)
    url, log = front
    answers = [requests.get(f"{url}/m/alice/digits/1/model.json", timeout=10) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert [answer.headers["X-Cache"] for answer in answers] == ["MISS", "HIT", "HIT"]
    assert requests.get(f"{url}/m/alice/digits/latest/model.json", timeout=10).status_code == 200  # reaches the app
    assert downloads.flush() == 0  # the app saw two of these four loads and counted neither
    for _ in range(100):  # nginx writes its buffered log lines within a second
        if len(log.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    assert all(re.match(r"^\d+\.\d{3} 200 /m/alice/digits/", entry) for entry in log.read_text().splitlines())
    call_command("downloads_from_log", str(log))
    assert counts() == {1: 4}

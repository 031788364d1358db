"""The `modelport` CLI, installed on its own (pip install ./client, in
.venv-client by `make client`), run as a subprocess against the live
registry and its worker, the way a CI job runs it."""

from __future__ import annotations

import functools
import json
import os
import stat
import subprocess
import threading
from http.server import ThreadingHTTPServer

import pytest

from tests import zoo
from tests.e2e_fixtures import PROJECT_DIR, QuietHandler, tfjs_predict
from tests.test_end_to_end import assert_parity
from tests.tokens import api_token

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["disk"], indirect=True)]

CLI = PROJECT_DIR / ".venv-client" / "bin" / "modelport"


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return zoo.keras2_cnn_h5(tmp_path_factory.mktemp("cli-zoo"))


@pytest.fixture
def modelport(registry, owner, tmp_path):
    assert CLI.exists(), "run `make client` (make test does) to install the CLI"
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "MODELPORT_URL": registry.url,
        "MODELPORT_TOKEN": api_token(owner, "cli"),
    }  # fmt: skip

    def run(*args: str, check: bool = True, env_overrides: dict | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(CLI), *args], env={**env, **(env_overrides or {})}, capture_output=True, text=True, timeout=600
        )
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    return run


def test_push_wait_alias_then_status_ls_and_pull_as_a_ci_job_would(modelport, registry, cnn, tmp_path):
    pushed = modelport("push", "alice/digits", str(cnn.path), "--create", "--wait", "--alias", "production")
    assert "Version 1 is ready" in pushed.stdout
    assert f"production → version 1: {registry.url}/m/alice/digits/production/model.json" in pushed.stdout

    as_json = json.loads(modelport("--json", "push", "alice/digits", str(cnn.path), "--wait").stdout)
    assert (as_json["number"], as_json["status"], as_json["format"]) == (2, "ready", "layers-model")
    assert as_json["parity"]["passed"] is True

    status = json.loads(modelport("--json", "status", "alice/digits@production").stdout)
    assert (status["number"], status["status"]) == (1, "ready")
    assert json.loads(modelport("--json", "status", "alice/digits").stdout)["number"] == 2
    listed = json.loads(modelport("--json", "ls", "alice").stdout)
    assert [(m["full_name"], m["latest_version"]) for m in listed] == [("alice/digits", 2)]

    moved = json.loads(modelport("--json", "alias", "set", "alice/digits", "production", "2").stdout)
    assert moved["version"] == 2
    rolled = json.loads(modelport("--json", "alias", "rollback", "alice/digits", "production").stdout)
    assert rolled["version"] == 1
    log = json.loads(modelport("--json", "alias", "log", "alice/digits", "production").stdout)
    assert [(m["from_version"], m["to_version"], m["rollback"]) for m in log] == [
        (2, 1, True), (1, 2, False), (None, 1, False),
    ]  # fmt: skip

    # Pulled files, hosted by a plain static server, load in TF.js and match Keras.
    target = tmp_path / "pulled"
    pulled = json.loads(modelport("--json", "pull", "alice/digits@production", str(target)).stdout)
    assert pulled["version"] == 1 and pulled["files"][0] == "model.json"
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(target)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/model.json"
        assert_parity(tfjs_predict(url, "layers", cnn.inputs, tmp_path), cnn.expected)
    finally:
        server.shutdown()


def test_a_teachable_machine_folder_is_pushed_and_pulled_with_its_metadata(modelport, tmp_path):
    from tests.test_companions import teachable_export

    export = teachable_export(tmp_path / "tm-my-image-model")
    modelport("push", "alice/pets", str(export), "--create", "--wait")
    target = tmp_path / "pulled"
    pulled = json.loads(modelport("--json", "pull", "alice/pets", str(target)).stdout)
    assert "metadata.json" in pulled["files"]
    assert (target / "metadata.json").read_bytes() == (export / "metadata.json").read_bytes()
    model_json = json.loads((target / "model.json").read_text())
    local = [path for group in model_json["weightsManifest"] for path in group["paths"]]
    assert sorted(model_json["integrity"]) == sorted(local)  # verify.mjs still works where it is hosted
    assert all((target / path).is_file() for path in local)


def test_a_failed_conversion_exits_non_zero_with_the_reason(modelport, tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 4096)
    done = modelport("push", "alice/broken", str(broken), "--create", "--wait", "--alias", "production", check=False)
    assert done.returncode == 1
    assert "Version 1 failed:" in done.stderr
    assert done.stderr.strip().split("failed:", 1)[1].strip()  # the registry's words, not a stack trace
    assert "Traceback" not in done.stderr


def test_refusals_are_printed_in_words_with_exit_status_1(modelport):
    done = modelport("status", "alice/nothing", check=False)
    assert (done.returncode, done.stderr.strip()) == (1, "error: No model 'alice/nothing'.")
    done = modelport("--json", "ls", check=False, env_overrides={"MODELPORT_TOKEN": "mp_wrong"})
    assert done.returncode == 1
    assert json.loads(done.stdout) == {"error": "Invalid token.", "status": 401}
    assert modelport("push", "nonsense", "x", check=False).returncode == 1


def test_login_stores_url_and_token_readable_by_the_user_only(modelport, registry, tmp_path, owner):
    token = api_token(owner, "laptop")
    done = modelport("--url", registry.url, "login", "--token", token, env_overrides={"MODELPORT_TOKEN": ""})
    path = tmp_path / ".config" / "modelport" / "config.json"
    assert f"saved in {path}" in done.stdout.replace("\n", "")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"url": registry.url, "token": token}
    # Later commands use it with no environment at all.
    listed = modelport("--json", "ls", env_overrides={"MODELPORT_TOKEN": "", "MODELPORT_URL": ""})
    assert json.loads(listed.stdout) == []
    refused = modelport("--url", registry.url, "login", "--token", "mp_nope", check=False)
    assert refused.returncode == 1 and "did not accept the token" in refused.stderr

"""A page on another origin loads models from the registry with TF.js in
headless Chromium and gets TensorFlow's predictions."""

from __future__ import annotations

import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from rest_framework.authtoken.models import Token

from tests import zoo
from tests.e2e_fixtures import PROJECT_DIR
from tests.test_end_to_end import TOLERANCE, create_and_upload

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def app_origin(tmp_path_factory):
    """A static web app served from its own origin (127.0.0.1, another port)."""
    root = tmp_path_factory.mktemp("webapp")
    shutil.copy(Path(__file__).parent / "browser_app" / "index.html", root / "index.html")
    shutil.copy(PROJECT_DIR / "node_modules/@tensorflow/tfjs/dist/tf.min.js", root / "tf.min.js")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    directory = tmp_path_factory.mktemp("browser-zoo")
    return {"cnn": zoo.keras2_cnn_h5(directory), "scorer": zoo.saved_model_zip(directory)}


def test_page_on_another_origin_loads_layers_and_graph_models_with_tensorflows_predictions(
    registry, owner, models, app_origin, tmp_path
):
    from playwright.sync_api import sync_playwright

    token = Token.objects.create(user=owner).key
    urls = {}
    for name, built in models.items():
        version = create_and_upload(registry, token, name, built.path)
        assert version["status"] == "ready", version["error"]
        urls[name] = f"{registry.url}/m/alice/{name}/latest/model.json"
    assert not registry.url.startswith(app_origin)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{app_origin}/index.html")
        for name, built in models.items():
            inputs = [{"shape": list(x.shape), "data": x.ravel().tolist()} for x in built.inputs]
            outputs = page.evaluate(
                "([url, kind, inputs]) => predict(url, kind, inputs)", [urls[name], built.kind, inputs]
            )
            assert len(outputs) == len(built.expected)
            for got, want in zip(outputs, built.expected, strict=True):
                actual = np.asarray(got["data"], dtype=np.float32).reshape(got["shape"])
                np.testing.assert_allclose(actual, want, atol=TOLERANCE, rtol=0)
        assert page.text_content("#status").startswith("predicted with")
        page.screenshot(path=str(tmp_path / "browser-app.png"))
        browser.close()

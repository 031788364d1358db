"""The browser side, in Chromium with the real npm packages, from a web app
on another origin: Teachable Machine's library and ml5 load a Teachable
Machine export from Modelport with its labels; a head trained in the page
on a served cut is saved back with tf.io.http and comes back the same; a
load through /m/-/verify.mjs fails when a weight file is altered in transit."""

from __future__ import annotations

import contextlib
import json
import subprocess

import numpy as np
import pytest

from tests import zoo
from tests.e2e_fixtures import CHROMIUM, CHROMIUM_ARGS, PROJECT_DIR, tfjs_predict
from tests.test_browser import as_arrays
from tests.test_companions import teachable_export, zipped
from tests.test_end_to_end import TOLERANCE, create_and_upload
from tests.tokens import api_token

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["disk"], indirect=True)]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return teachable_export(tmp_path_factory.mktemp("teachable") / "tm-my-image-model")


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return zoo.keras2_cnn_h5(tmp_path_factory.mktemp("cnn"))


@contextlib.contextmanager
def chromium(*extra_args: str):
    """Chromium, started once the test's database work is done: Django
    refuses database calls while playwright's event loop runs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
        yield browser
        browser.close()


def open_page(browser, url: str):
    page = browser.new_context().new_page()  # a fresh profile: no cookie, no session
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    return page, errors


def as_inputs(arrays) -> list[dict]:
    return [{"shape": list(x.shape), "data": x.ravel().tolist()} for x in arrays]


def test_teachable_machine_and_ml5_load_an_export_with_its_labels(registry, owner, export, tmp_path, app_origin):
    version = create_and_upload(registry, api_token(owner), "tm", zipped(export, tmp_path / "tm.zip"))
    assert version["status"] == "ready", version["error"]
    base = f"{registry.url}/m/alice/tm/latest/"
    with chromium() as browser:
        check_teachable_and_ml5(browser, app_origin, base)


def check_teachable_and_ml5(browser, app_origin: str, base: str) -> None:
    page, errors = open_page(browser, f"{app_origin}/teachable.html")
    for color, label in (("#ff0000", "Red"), ("#0000ff", "Blue")):
        answer = page.evaluate("([base, color]) => classifyWithTeachable(base, color)", [base, color])
        assert answer["labels"] == ["Red", "Blue"]
        best = max(answer["predictions"], key=lambda item: item["probability"])
        assert (best["className"], round(best["probability"], 3)) == (label, 1.0)
    assert errors == []

    page, errors = open_page(browser, f"{app_origin}/ml5.html")
    for color, label in (("#ff0000", "Red"), ("#0000ff", "Blue")):
        results = page.evaluate("([url, color]) => classifyWithMl5(url, color)", [base + "model.json", color])
        assert [item["label"] for item in results] == [label, ({"Red", "Blue"} - {label}).pop()]
        assert results[0]["confidence"] > 0.99
    assert errors == []


def test_a_head_trained_in_the_page_is_saved_with_tf_io_http_and_comes_back_the_same(
    registry, owner, cnn, tmp_path, app_origin
):
    token = api_token(owner)
    base = create_and_upload(registry, token, "cnn", cnn.path)
    assert base["status"] == "ready", base["error"]
    api = registry.api(token)
    assert api.post(f"{registry.url}/api/v1/models/", json={"name": "tuned"}).status_code == 201

    with chromium() as browser:
        page, errors = open_page(browser, f"{app_origin}/index.html")
        saved = page.evaluate(
            "([cut, upload, token, inputs]) => trainHeadAndSave(cut, upload, token, inputs)",
            [
                f"{registry.url}/m/alice/cnn/1/cut/gap/model.json",
                f"{registry.url}/api/v1/models/alice/tuned/versions/",
                token,
                as_inputs(cnn.inputs),
            ],
        )
    assert saved["status"] == 202
    assert saved["version"]["status"] == "pending"
    assert saved["version"]["upload"]["name"] == "model.zip"
    version = registry.wait_final(api, "alice", "tuned", saved["version"]["number"])
    assert version["status"] == "ready", version["error"]
    assert version["input_format"] == "tfjs"
    assert version["parity"]["passed"]  # rebuilt in TensorFlow and compared, like any TF.js upload
    trained_in_page = as_arrays(saved["predicted"])
    served = tfjs_predict(version["model_url"], "layers", cnn.inputs, tmp_path)
    np.testing.assert_allclose(served[0], trained_in_page[0], atol=TOLERANCE, rtol=0)
    assert errors == []


def test_a_model_saved_with_tf_io_http_from_node_comes_back_the_same(registry, owner, tmp_path):
    token = api_token(owner)
    api = registry.api(token)
    assert api.post(f"{registry.url}/api/v1/models/", json={"name": "from-node"}).status_code == 201
    script = PROJECT_DIR / "tests" / "browser_app" / "save_http.mjs"
    done = subprocess.run(
        ["node", str(script), f"{registry.url}/api/v1/models/alice/from-node/versions/", token],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads(done.stdout)
    assert saved["status"] == 202
    version = registry.wait_final(api, "alice", "from-node", saved["version"]["number"])
    assert version["status"] == "ready", version["error"]
    inputs = [np.asarray(saved["inputs"], dtype=np.float32)]
    served = tfjs_predict(version["model_url"], "layers", inputs, tmp_path)
    np.testing.assert_allclose(served[0], np.asarray(saved["outputs"]), atol=TOLERANCE, rtol=0)

    unauthorised = subprocess.run(
        ["node", str(script), f"{registry.url}/api/v1/models/alice/from-node/versions/", "mp_not-a-token"],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert unauthorised.returncode != 0
    assert "401" in unauthorised.stderr


def test_a_weight_file_altered_in_transit_fails_a_verified_load(registry, owner, cnn, app_origin):
    version = create_and_upload(registry, api_token(owner), "checked", cnn.path)
    assert version["status"] == "ready", version["error"]
    with chromium() as browser:
        check_verified_loads(browser, app_origin, registry.url, version, cnn)


def check_verified_loads(browser, app_origin: str, base_url: str, version: dict, cnn) -> None:
    module = f"{base_url}/m/-/verify.mjs"
    url, pinned = version["model_url"], version["model_json_integrity"]
    call = "([module, url, integrity, inputs]) => loadVerified(module, url, integrity, inputs)"

    page, _ = open_page(browser, f"{app_origin}/index.html")
    outputs = page.evaluate(call, [module, url, pinned, as_inputs(cnn.inputs)])
    np.testing.assert_allclose(as_arrays(outputs)[0], cnn.expected[0], atol=TOLERANCE, rtol=0)
    # An alias's model.json cannot be pinned; its weights are still checked.
    alias = f"{base_url}/m/alice/checked/latest/model.json"
    assert page.evaluate(call, [module, alias, "", as_inputs(cnn.inputs)])

    def tamper(route):
        response = route.fetch()
        body = bytearray(response.body())
        body[len(body) // 2 | 3] ^= 0xFF  # a float32's sign and exponent: a change no tolerance hides
        route.fulfill(response=response, body=bytes(body))

    from playwright.sync_api import Error

    tampered, _ = open_page(browser, f"{app_origin}/index.html")
    tampered.route("**/blobs/**", tamper)
    with pytest.raises(Error, match="integrity|Failed to fetch"):
        tampered.evaluate(call, [module, url, pinned, as_inputs(cnn.inputs)])
    # Without the module, the same altered bytes load silently: the check is what refuses them.
    plain = tampered.evaluate("([url, inputs]) => predict(url, 'layers', inputs)", [url, as_inputs(cnn.inputs)])
    assert not np.allclose(as_arrays(plain)[0], cnn.expected[0], atol=TOLERANCE)

    wrong_pin = "sha256-" + "A" * 43 + "="
    fresh, _ = open_page(browser, f"{app_origin}/index.html")
    with pytest.raises(Error, match="integrity|Failed to fetch"):
        fresh.evaluate(call, [module, url, wrong_pin, as_inputs(cnn.inputs)])


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A one-colour PNG, as a photo a user would drop on the page."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_the_playground_classifies_a_picture_with_its_labels_signed_out(registry, owner, export, tmp_path):
    version = create_and_upload(registry, api_token(owner), "tm", zipped(export, tmp_path / "tm.zip"))
    assert version["status"] == "ready", version["error"]
    with chromium() as browser:
        page, errors = open_page(browser, f"{registry.url}/alice/tm/")
        assert (
            page.input_value("[data-try-preset]") == "metadata"
        )  # Teachable Machine's normalisation, from metadata.json
        for backend in ("cpu", "wasm"):
            page.select_option("[data-try-backend]", backend)
            for name, rgb, label in (("red.png", (230, 20, 30), "Red"), ("blue.png", (10, 30, 220), "Blue")):
                page.set_input_files(
                    "[data-try-file]", {"name": name, "mimeType": "image/png", "buffer": png(300, 200, rgb)}
                )
                page.wait_for_function(
                    "label => document.querySelector('[data-try-top] .try-label')?.textContent === label", arg=label
                )
                assert page.inner_text("[data-try-top] li:first-child .try-score") == "100.0%"
                assert f"on {backend}." in page.inner_text("[data-try-output]")
                assert "Prediction:" in page.inner_text("[data-try-output]")
        assert errors == []

    # The webcam: Chromium's fake camera (a test pattern), allowed without asking.
    with chromium("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream") as browser:
        page, errors = open_page(browser, f"{registry.url}/alice/tm/")
        page.select_option("[data-try-backend]", "cpu")
        page.click("[data-try-webcam]")
        page.wait_for_selector("[data-try-top] li")
        assert page.evaluate("() => document.querySelector('video.try-webcam').videoWidth") > 0
        assert {page.inner_text("[data-try-top] li:first-child .try-label")} <= {"Red", "Blue"}
        assert "Prediction:" in page.inner_text("[data-try-output]")
        assert errors == []

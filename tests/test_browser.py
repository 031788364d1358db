"""A page on another origin loads models from the registry with TF.js in
headless Chromium and gets TensorFlow's predictions: a layers model, a
MobileNet with its cut at conv_pw_13_relu (served, and made in the browser
the classic way), and a graph model."""

from __future__ import annotations

import numpy as np
import pytest

from tests import zoo
from tests.e2e_fixtures import CHROMIUM, CHROMIUM_ARGS
from tests.test_end_to_end import TOLERANCE, create_and_upload
from tests.tokens import api_token

pytestmark = pytest.mark.e2e

CUT = "conv_pw_13_relu"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    directory = tmp_path_factory.mktemp("browser-zoo")
    mobilenet, cut_expected = zoo.mobilenet_h5(directory, CUT)
    return {"cnn": zoo.keras2_cnn_h5(directory), "scorer": zoo.saved_model_zip(directory), "mobilenet": mobilenet}, {
        "cut": cut_expected
    }


def as_arrays(outputs: list[dict]) -> list[np.ndarray]:
    return [np.asarray(out["data"], dtype=np.float32).reshape(out["shape"]) for out in outputs]


def test_page_on_another_origin_loads_full_cut_and_graph_models_with_tensorflows_predictions(
    registry, owner, models, app_origin, tmp_path
):
    from playwright.sync_api import sync_playwright

    built, expected = models
    token = api_token(owner)
    for name, model in built.items():
        version = create_and_upload(registry, token, name, model.path)
        assert version["status"] == "ready", version["error"]
    assert not registry.url.startswith(app_origin)
    base = f"{registry.url}/m/alice"
    mobilenet_inputs = [{"shape": list(x.shape), "data": x.ravel().tolist()} for x in built["mobilenet"].inputs]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{app_origin}/index.html")
        for name, model in built.items():
            inputs = [{"shape": list(x.shape), "data": x.ravel().tolist()} for x in model.inputs]
            url = f"{base}/{name}/latest/model.json"
            outputs = page.evaluate("([url, kind, inputs]) => predict(url, kind, inputs)", [url, model.kind, inputs])
            for got, want in zip(as_arrays(outputs), model.expected, strict=True):
                np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)

        cut_url = f"{base}/mobilenet/1/cut/{CUT}/model.json"
        served_cut = page.evaluate("([u, i]) => predict(u, 'layers', i)", [cut_url, mobilenet_inputs])
        full_url = f"{base}/mobilenet/1/model.json"
        browser_cut = page.evaluate("([u, l, i]) => cutInBrowser(u, l, i)", [full_url, CUT, mobilenet_inputs])
        for outputs in (served_cut, browser_cut):
            got = as_arrays(outputs)[0]
            assert got.shape == (2, 4, 4, 256)
            np.testing.assert_allclose(got, expected["cut"][0], atol=1e-4, rtol=1e-4)
        assert page.text_content("#status").startswith("predicted with")
        browser.close()

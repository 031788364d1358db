"""A web app on another origin loads a private model through an access link
in Chromium — no header, no token, no cookie — and gets TensorFlow's
predictions; from an origin the link does not list, and after the link
expires, the load fails."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests import zoo
from tests.e2e_fixtures import CHROMIUM, CHROMIUM_ARGS
from tests.test_browser import as_arrays
from tests.test_end_to_end import TOLERANCE, create_and_upload
from tests.tokens import api_token

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["disk"], indirect=True)]
SHORT_TTL = 12


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    directory = tmp_path_factory.mktemp("link-zoo")
    return {"cnn": zoo.keras2_cnn_h5(directory), "scorer": zoo.saved_model_zip(directory)}


def mint(api, registry, name: str, **body) -> str:
    response = api.post(f"{registry.url}/api/v1/models/alice/{name}/access-links/", json={"ref": "latest", **body})
    assert response.status_code == 201, response.text
    return response.json()["model_url"]


def test_private_models_load_through_access_links_from_another_origin_until_they_expire(
    registry, owner, built, app_origin
):
    from playwright.sync_api import Error, sync_playwright

    token = api_token(owner)
    api = registry.api(token)
    for name, model in built.items():
        version = create_and_upload(registry, token, name, model.path, public=False)
        assert version["status"] == "ready", version["error"]
    assert registry.api().get(f"{registry.url}/m/alice/cnn/latest/model.json").status_code == 404

    links = {name: mint(api, registry, name, ttl_seconds=600, origins=[app_origin]) for name in built}
    elsewhere = mint(api, registry, "cnn", ttl_seconds=600, origins=["https://elsewhere.example"])

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()  # a fresh profile: no cookies, no session
        page.goto(f"{app_origin}/index.html")
        run = "([url, kind, inputs]) => predict(url, kind, inputs)"
        for name, model in built.items():
            inputs = [{"shape": list(x.shape), "data": x.ravel().tolist()} for x in model.inputs]
            outputs = page.evaluate(run, [links[name], model.kind, inputs])
            for got, want in zip(as_arrays(outputs), model.expected, strict=True):
                np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)

        cnn_inputs = [{"shape": list(x.shape), "data": x.ravel().tolist()} for x in built["cnn"].inputs]
        # Long enough to be used on a loaded machine; the test then waits it out.
        minted = time.monotonic()
        short = mint(api, registry, "cnn", ttl_seconds=SHORT_TTL)
        assert page.evaluate(run, [short, "layers", cnn_inputs])  # works while it lives
        with pytest.raises(Error, match="403|Failed to fetch"):
            page.evaluate(run, [elsewhere, "layers", cnn_inputs])
        time.sleep(max(0.0, minted + SHORT_TTL + 1 - time.monotonic()))
        with pytest.raises(Error, match="403|Failed to fetch"):
            page.evaluate(run, [short, "layers", cnn_inputs])
        # The unexpired link of the same model still works in the same page.
        assert page.evaluate(run, [links["cnn"], "layers", cnn_inputs])
        browser.close()

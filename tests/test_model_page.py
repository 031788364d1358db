"""The model page as the `make run` admin uses it, in headless Chromium: sign
in, create a private model, upload through the page's form with a variant
ticked, and watch the version row the page's JavaScript draws while it polls.
That row must say what the server renders for the same version after a reload
(static/js/model_page.js mirrors registry/templates/registry/version_rows.html).
Then mint an access link on the page and load the model with it in a web app
on another origin: from sign-in to a loaded model, with Keras' predictions."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests import zoo
from tests.e2e_fixtures import CHROMIUM, CHROMIUM_ARGS, signed_in_page
from tests.test_browser import as_arrays
from tests.test_end_to_end import TOLERANCE

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["disk"], indirect=True)]


def words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_admin_signs_in_uploads_on_the_page_and_loads_the_model_through_an_access_link(
    registry, django_user_model, app_origin, tmp_path
):
    from playwright.sync_api import sync_playwright

    django_user_model.objects.create_superuser("admin", password="admin-password-1")  # as `make run` does
    built = zoo.keras2_cnn_h5(tmp_path)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page, errors = signed_in_page(browser.new_context(), registry.url, "admin", "admin-password-1")
        page.goto(f"{registry.url}/new/")
        page.fill("input[name=name]", "digits")
        page.uncheck("input[name=public]")
        page.get_by_role("button", name="Create model").click()
        page.wait_for_url(f"{registry.url}/admin/digits/")

        page.set_input_files("#upload-file", str(built.path))
        page.check("input[name=variants][value=graph]")
        page.click("[data-upload-button]")
        page.wait_for_selector("tbody.version[data-status=ready]", timeout=240_000)
        page.wait_for_selector("tbody.version:not([data-variants-pending])", timeout=240_000)
        drawn = words(page.inner_text("tbody.version"))

        page.reload()
        rendered = words(page.inner_text("tbody.version"))

        page.select_option("#id_ref", "1")
        page.get_by_role("button", name="Mint access link").click()
        link = page.inner_text("#access-links .link-url").strip()
        app = browser.new_context().new_page()  # another origin, no session
        app.goto(f"{app_origin}/index.html")
        inputs = [{"shape": list(x.shape), "data": x.ravel().tolist()} for x in built.inputs]
        outputs = app.evaluate("([url, inputs]) => predict(url, 'layers', inputs)", [link, inputs])
        browser.close()

    assert link.startswith(f"{registry.url}/m/admin/digits/1/model.json?access=")
    for got, want in zip(as_arrays(outputs), built.expected, strict=True):
        np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)

    assert not errors, errors
    assert "✓ Verified on cpu" in drawn  # the suite's worker runs no browser check (tests/conftest.py)
    assert "const model = await tf.loadLayersModel('" in drawn
    assert "graph model Ready" in drawn and "const model = await tf.loadGraphModel('" in drawn
    assert drawn == rendered

"""The model page as its owner uses it, in headless Chromium: create a model,
upload through the page's form with a variant ticked, and watch the version
row the page's JavaScript draws while it polls. That row must say what the
server renders for the same version after a reload (static/js/model_page.js
mirrors registry/templates/registry/version_rows.html)."""

from __future__ import annotations

import re

import pytest

from tests import zoo
from tests.e2e_fixtures import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["disk"], indirect=True)]


def words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_owner_uploads_on_the_page_and_the_polled_row_is_the_rendered_row(registry, owner, tmp_path):
    from playwright.sync_api import sync_playwright

    built = zoo.keras2_cnn_h5(tmp_path)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{registry.url}/login/")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "alice-password-1")
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{registry.url}/new/")
        page.fill("input[name=name]", "digits")
        page.get_by_role("button", name="Create model").click()
        page.wait_for_url(f"{registry.url}/alice/digits/")

        page.set_input_files("#upload-file", str(built.path))
        page.check("input[name=variants][value=graph]")
        page.click("[data-upload-button]")
        page.wait_for_selector("tbody.version[data-status=ready]", timeout=240_000)
        page.wait_for_selector("tbody.version:not([data-variants-pending])", timeout=240_000)
        drawn = words(page.inner_text("tbody.version"))

        page.reload()
        rendered = words(page.inner_text("tbody.version"))
        browser.close()

    assert not errors, errors
    assert "✓ Verified on cpu" in drawn  # the suite's worker runs no browser check (tests/conftest.py)
    assert "const model = await tf.loadLayersModel('" in drawn
    assert "graph model Ready" in drawn and "const model = await tf.loadGraphModel('" in drawn
    assert drawn == rendered

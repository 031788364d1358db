"""Every interaction on the model page, in Chromium, as its owner: copy a
snippet, ask for a variant, set, move, roll back and remove an alias, pick
a transfer-learning layer, edit the model card. Each is checked by what
the page then shows and what the API then says. (Uploading, access links
and the playground have tests of their own: test_model_page.py,
test_browser_side.py.)"""

from __future__ import annotations

import re

import pytest

from tests import zoo
from tests.e2e_fixtures import CHROMIUM, CHROMIUM_ARGS, signed_in_page
from tests.test_end_to_end import create_and_upload
from tests.tokens import api_token

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["disk"], indirect=True)]


def test_the_owner_uses_every_control_of_the_model_page(registry, owner, tmp_path, settings):
    from playwright.sync_api import expect, sync_playwright

    token = api_token(owner)
    built = zoo.keras2_cnn_h5(tmp_path)
    version = create_and_upload(registry, token, "cnn", built.path)
    assert version["status"] == "ready", version["error"]
    api = registry.api(token)
    with open(built.path, "rb") as handle:
        second = api.post(f"{registry.url}/api/v1/models/alice/cnn/versions/", files={"file": ("cnn.h5", handle)})
    assert registry.wait_final(api, "alice", "cnn", second.json()["number"])["status"] == "ready"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context()
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=registry.url)
        page, errors = signed_in_page(context, registry.url, "alice", "alice-password-1")
        page.goto(f"{registry.url}/alice/cnn/")

        # Copy: the clipboard holds the snippet.
        page.click("#use-it .copy-button")
        copied = page.evaluate("() => navigator.clipboard.readText()")
        assert copied == f"const model = await tf.loadLayersModel('{registry.url}/m/alice/cnn/latest/model.json');"

        # A variant asked for on the page is made, and its row says so when ready.
        row = page.locator('tbody.version[data-number="1"]')
        row.locator("[data-variant-form] select").select_option("uint8")
        row.locator("[data-variant-form] button").click()
        ready_variant = page.locator('tbody.version[data-number="1"] li.variant[data-variant="uint8"] .status-ready')
        expect(ready_variant).to_be_visible(timeout=240_000)
        uint8 = next(v for v in api.get(f"{registry.url}/api/v1/models/alice/cnn/versions/1/").json()["variants"])
        assert (uint8["variant"], uint8["status"]) == ("uint8", "ready")
        assert uint8["model_url"] in page.inner_text('tbody.version[data-number="1"]')

        # Aliases: set, move, roll back, remove.
        aliases = f"{registry.url}/api/v1/models/alice/cnn/aliases/"
        page.fill("#alias-name", "production")
        page.select_option("#alias-version", "1")
        page.click("#alias-form button[type=submit]")
        expect(page.locator("[data-alias-done]")).to_have_text("Created production, pointing at version 1.")
        expect(page.locator('tbody.alias[data-alias="production"]')).to_have_attribute("data-version", "1")
        page.click('tbody.alias[data-alias="production"] [data-alias-move]')
        assert page.input_value("#alias-name") == "production"
        page.select_option("#alias-version", "2")
        page.click("#alias-form button[type=submit]")
        expect(page.locator("[data-alias-done]")).to_have_text("Moved production from version 1 to 2.")
        assert api.get(f"{aliases}production/").json()["version"] == 2
        page.click('tbody.alias[data-alias="production"] [data-alias-rollback]')
        expect(page.locator("[data-alias-done]")).to_have_text("Rolled production back to version 1.")
        assert api.get(f"{aliases}production/").json()["version"] == 1
        page.once("dialog", lambda dialog: dialog.accept())
        page.click('tbody.alias[data-alias="production"] [data-alias-remove]')
        expect(page.locator("[data-alias-done]")).to_have_text("Removed production; it pointed at version 1.")
        expect(page.locator('tbody.alias[data-alias="production"]')).to_have_count(0)
        assert api.get(f"{aliases}production/").status_code == 404

        # Transfer learning: open the layers, filter, pick one; the cut snippet is that layer's served cut.
        page.click("[data-layers-panel] > summary")
        page.fill("#layers-filter", "ga")
        expect(page.locator('tr[data-layer="conv"]')).to_be_hidden()
        page.check('tr[data-layer="gap"] input')
        cut_url = f"{registry.url}/m/alice/cnn/2/cut/gap/model.json"
        expect(page.locator("[data-cut-snippet] [data-snippet]")).to_have_text(
            f"const base = await tf.loadLayersModel('{cut_url}');"
        )
        assert api.get(cut_url).status_code == 200

        # The model card: edited on the page, rendered, and what the API returns.
        assert page.get_attribute("#model-card details.card-editor", "open") == ""  # open while there is no card
        page.fill("textarea[name=readme]", "# Digits\n\nA *small* CNN.")
        page.fill("input[name=tags]", "vision, demo")
        page.click("#model-card button[type=submit]")
        expect(page.locator("#model-card h1")).to_have_text("Digits")
        model = api.get(f"{registry.url}/api/v1/models/alice/cnn/").json()
        assert (model["readme"], model["tags"]) == ("# Digits\n\nA *small* CNN.", ["vision", "demo"])

        # Access links: minted, then revoked, on the page; the link stops working.
        page.select_option("#id_ref", "2")
        page.get_by_role("button", name="Mint access link").click()
        link_row = page.locator("#access-links tr[data-link]").first
        expect(link_row).to_contain_text("active")
        link_url = link_row.locator(".link-url").inner_text().strip()
        assert registry.api().get(link_url).status_code == 200
        link_row.get_by_role("button", name="Revoke").click()
        expect(page.locator("#access-links tr[data-link]").first).to_contain_text("revoked")
        assert registry.api().get(link_url).status_code == 403

        # Webhooks: added (its secret shown once), then removed.
        settings.WEBHOOKS_ALLOW_PRIVATE = "loopback"
        page.fill("#webhook-url", "http://127.0.0.1:9/hooks/modelport")
        page.get_by_role("button", name="Add webhook").click()
        expect(page.locator("#webhooks .token-new [data-snippet]")).to_have_text(re.compile(r"^whsec_"))
        hooks = api.get(f"{registry.url}/api/v1/models/alice/cnn/webhooks/").json()
        assert [hook["url"] for hook in hooks] == ["http://127.0.0.1:9/hooks/modelport"]
        page.locator("#webhooks .webhook").get_by_role("button", name="Remove").click()
        expect(page.locator("#webhooks .webhook")).to_have_count(0)
        assert api.get(f"{registry.url}/api/v1/models/alice/cnn/webhooks/").json() == []
        assert errors == []
        browser.close()

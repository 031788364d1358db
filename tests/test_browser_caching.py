"""What a browser downloads, measured in Chromium through the DevTools
protocol: a reload of a pinned version transfers no weight bytes, and after
an alias moves to a version that retrained only the head, only the changed
weight groups are downloaded (≤ 10% of a cold load)."""

from __future__ import annotations

import numpy as np
import pytest

from tests import zoo
from tests.e2e_fixtures import CHROMIUM, CHROMIUM_ARGS
from tests.test_end_to_end import create_and_upload
from tests.tokens import api_token

pytestmark = pytest.mark.e2e


class NetworkLog:
    """Bytes received per URL, from Network.* DevTools events."""

    def __init__(self, cdp):
        self.urls: dict[str, str] = {}
        self.received: dict[str, int] = {}
        self.from_cache: set[str] = set()
        cdp.on("Network.requestWillBeSent", lambda e: self.urls.__setitem__(e["requestId"], e["request"]["url"]))
        cdp.on("Network.requestServedFromCache", lambda e: self.from_cache.add(e["requestId"]))
        cdp.on("Network.loadingFinished", lambda e: self.received.__setitem__(e["requestId"], e["encodedDataLength"]))
        cdp.send("Network.enable")

    def mark(self) -> set[str]:
        return set(self.urls)

    def settle(self, page, mark: set[str], timeout_ms: int = 5000) -> None:
        """Wait until every blob request since `mark` has finished loading."""
        for _ in range(timeout_ms // 50):
            ids = [rid for rid, url in self.urls.items() if rid not in mark and "/blobs/" in url]
            if ids and all(rid in self.received for rid in ids):
                return
            page.wait_for_timeout(50)  # lets Playwright deliver the pending DevTools events

    def weight_bytes_since(self, mark: set[str]) -> tuple[int, int]:
        """(bytes over the network, blob requests) for blob requests since `mark`."""
        ids = [rid for rid, url in self.urls.items() if rid not in mark and "/blobs/" in url]
        network = sum(self.received.get(rid, 0) for rid in ids if rid not in self.from_cache)
        return network, len(ids)


def test_pinned_reload_costs_no_weight_bytes_and_a_head_update_costs_only_the_head(
    registry, owner, app_origin, tmp_path
):
    from playwright.sync_api import sync_playwright

    first, second, inputs, expected_second = zoo.retrained_head_pair(tmp_path)
    token = api_token(owner)
    assert create_and_upload(registry, token, "transfer", first)["status"] == "ready"
    api = registry.api(token)
    with open(second, "rb") as handle:
        api.post(f"{registry.url}/api/v1/models/alice/transfer/versions/", files={"file": ("v2.h5", handle)})
    assert registry.wait_final(api, "alice", "transfer", 2)["status"] == "ready"
    assert api.put(f"{registry.url}/api/v1/models/alice/transfer/aliases/production/", json={"version": 1}).ok
    production = f"{registry.url}/m/alice/transfer/production/model.json"
    pinned = f"{registry.url}/m/alice/transfer/1/model.json"
    feed = [{"shape": list(x.shape), "data": x.ravel().tolist()} for x in inputs]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context()

        def load(url: str) -> tuple[int, int, list]:
            page = context.new_page()
            network = NetworkLog(context.new_cdp_session(page))
            page.goto(f"{app_origin}/index.html")
            mark = network.mark()
            outputs = page.evaluate("([u, i]) => predict(u, 'layers', i)", [url, feed])
            network.settle(page, mark)
            transferred, requests = network.weight_bytes_since(mark)
            page.close()
            return transferred, requests, outputs

        cold, cold_requests, _ = load(production)
        warm, warm_requests, _ = load(production)
        pinned_warm, _, _ = load(pinned)
        assert api.put(f"{registry.url}/api/v1/models/alice/transfer/aliases/production/", json={"version": 2}).ok
        bump, bump_requests, outputs = load(production)
        browser.close()

    print(f"cold {cold} B in {cold_requests} requests; warm {warm}; pinned {pinned_warm}; bump {bump} B")
    assert cold_requests >= 4 and cold > 400_000, "MobileNet-0.25 weights should be ~0.9 MB in several groups"
    assert warm == 0 and warm_requests == cold_requests
    assert pinned_warm == 0
    assert 0 < bump <= 0.10 * cold
    got = np.asarray(outputs[0]["data"], dtype=np.float32).reshape(outputs[0]["shape"])
    np.testing.assert_allclose(got, expected_second[0], atol=1e-4, rtol=0)

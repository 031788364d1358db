"""Redirect delivery: blobs are answered with a redirect to a CDN base URL
(public models) or a signed storage URL (private ones), and TF.js, in Node
and in Chromium on another origin, follows them to the same predictions.
Local-disk storage has nothing to redirect to and keeps streaming."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import zoo
from tests.e2e_fixtures import CHROMIUM, CHROMIUM_ARGS, S3_BUCKET, tfjs_predict
from tests.test_end_to_end import TOLERANCE, create_and_upload
from tests.tokens import api_token

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    directory = tmp_path_factory.mktemp("delivery")
    return zoo.keras2_cnn_h5(directory), zoo.saved_model_zip(directory)


def make_blobs_publicly_readable(endpoint: str) -> None:
    """What a CDN in front of the bucket needs (see README, delivery modes)."""
    import boto3

    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{S3_BUCKET}/blobs/*",
            }
        ],
    }
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    client.put_bucket_policy(Bucket=S3_BUCKET, Policy=json.dumps(policy))


def first_blob(api, model_url: str) -> str:
    path = api.get(model_url).json()["weightsManifest"][0]["paths"][0]
    return model_url.rsplit("/", 2)[0] + "/" + path.removeprefix("../")


def test_redirect_delivery_is_followed_by_tfjs(registry, owner, built, settings, app_origin, tmp_path):
    from playwright.sync_api import sync_playwright

    settings.BLOB_DELIVERY = "redirect"
    cnn, scorer = built
    token = api_token(owner)
    public = create_and_upload(registry, token, "public-cnn", cnn.path)
    private = create_and_upload(registry, token, "private-cnn", cnn.path, public=False)
    graph = create_and_upload(registry, token, "scorer", scorer.path)
    api = registry.api(token)
    if registry.backend.name == "s3":
        endpoint = registry.backend.worker_env["S3_ENDPOINT_URL"]
        make_blobs_publicly_readable(endpoint)
        settings.BLOB_BASE_URL = f"{endpoint}/{S3_BUCKET}"  # the bucket standing in for a CDN
        cdn = api.get(first_blob(api, public["model_url"]), allow_redirects=False)
        assert cdn.status_code == 302
        assert cdn.headers["Location"].startswith(f"{endpoint}/{S3_BUCKET}/blobs/sha256/")
        assert cdn.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        signed = api.get(first_blob(api, private["model_url"]), allow_redirects=False)
        assert signed.status_code == 302
        assert "Signature" in signed.headers["Location"] or "X-Amz-Signature" in signed.headers["Location"]
        assert signed.headers["Cache-Control"] == "private, max-age=1800"
    else:
        assert api.get(first_blob(api, public["model_url"]), allow_redirects=False).status_code == 200

    headers = {"Authorization": f"Token {token}"}
    for version, extra in ((public, {}), (private, headers)):
        predicted = tfjs_predict(version["model_url"], "layers", cnn.inputs, tmp_path, headers=extra)
        np.testing.assert_allclose(predicted[0], cnn.expected[0], atol=TOLERANCE, rtol=0)
    # fromTFHub-style URLs: tfjs appends model.json's query string to every weight URL.
    hub_style = graph["model_url"] + "?tfjs-format=file"
    np.testing.assert_allclose(
        tfjs_predict(hub_style, "graph", scorer.inputs, tmp_path)[0], scorer.expected[0], atol=TOLERANCE, rtol=0
    )

    feed = [{"shape": list(x.shape), "data": x.ravel().tolist()} for x in cnn.inputs]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{app_origin}/index.html")
        outputs = page.evaluate("([u, i]) => predict(u, 'layers', i)", [public["model_url"], feed])
        browser.close()
    got = np.asarray(outputs[0]["data"], dtype=np.float32).reshape(outputs[0]["shape"])
    np.testing.assert_allclose(got, cnn.expected[0], atol=TOLERANCE, rtol=0)

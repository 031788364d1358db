"""Serve converted models under /m/{owner}/{name}/{ref}/… for TF.js loaders.

A numbered version never changes, so its files are cached forever. An alias
(``latest``) serves a model.json whose weight paths point into the numbered
version (``../3/group1-shard1of1.bin``): a load that starts on one version
finishes on it even if the alias moves mid-load, and the shards share one
cache entry with the numbered URL.
"""

from __future__ import annotations

import hashlib
import json

from django.http import Http404, HttpResponse, HttpResponseNotModified, StreamingHttpResponse
from django.views.decorators.http import require_safe
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from registry import storage
from registry.models import Model, Version
from registry.storage import IMMUTABLE_CACHE_CONTROL

ALIAS_CACHE_CONTROL = "public, no-cache"


def _user(request):
    """Session user, or the owner of a valid ``Authorization: Token`` header."""
    try:
        authenticated = TokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        authenticated = None
    return authenticated[0] if authenticated else request.user


def resolve(request, owner: str, name: str, ref: str) -> Version:
    model = Model.objects.visible_to(_user(request)).filter(owner__username=owner, name=name).first()
    if model is None:
        raise Http404("No such model.")
    if ref == "latest":
        version = model.latest_ready()
    elif ref.isdigit():
        version = model.versions.filter(number=int(ref), status=Version.Status.READY).first()
    else:
        version = None
    if version is None:
        raise Http404("No such version.")
    return version


@require_safe
def serve_file(request, owner: str, name: str, ref: str, filename: str):
    version = resolve(request, owner, name, ref)
    return _serve(request, version, not ref.isdigit(), version.artifact_prefix, version.files, filename, "")


@require_safe
def serve_variant_file(request, owner: str, name: str, ref: str, variant: str, filename: str):
    version = resolve(request, owner, name, ref)
    ready = version.ready_variant(variant)
    if ready is None:
        raise Http404("This version has no such variant (yet).")
    return _serve(request, version, not ref.isdigit(), ready["artifact_prefix"], ready["files"], filename, variant)


def _serve(request, version: Version, is_alias: bool, prefix: str, files: list[dict], filename: str, variant: str):
    if filename == "model.json":
        return _model_json(request, version, is_alias, prefix, variant)
    entry = next((item for item in files if item["path"] == filename), None)
    if entry is None:
        raise Http404("No such file in this version.")
    key = f"{prefix}/{filename}"
    etag = f'"{entry["sha256"]}"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified(headers={"ETag": etag})
    body = b"" if request.method == "HEAD" else storage.iter_blob(key)
    response = StreamingHttpResponse(body, content_type="application/octet-stream")
    response["Content-Length"] = str(entry["size"])
    response["ETag"] = etag
    response["Cache-Control"] = ALIAS_CACHE_CONTROL if is_alias else IMMUTABLE_CACHE_CONTROL
    return response


def _model_json(request, version: Version, is_alias: bool, prefix: str, variant: str):
    body = storage.read_blob(f"{prefix}/model.json")
    if is_alias:
        document = json.loads(body)
        pinned = f"../../{version.number}/{variant}" if variant else f"../{version.number}"
        for group in document.get("weightsManifest", []):
            group["paths"] = [f"{pinned}/{path}" for path in group["paths"]]
        body = json.dumps(document, separators=(",", ":")).encode()
    etag = f'"{hashlib.sha256(body).hexdigest()}"'
    headers = {
        "ETag": etag,
        "Cache-Control": ALIAS_CACHE_CONTROL if is_alias else IMMUTABLE_CACHE_CONTROL,
        "X-Modelport-Version": str(version.number),
    }
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified(headers=headers)
    response = HttpResponse(b"" if request.method == "HEAD" else body, content_type="application/json", headers=headers)
    response["Content-Length"] = str(len(body))
    return response

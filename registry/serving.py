"""Serve converted models under /m/{owner}/{name}/ for TF.js loaders.

    /m/{owner}/{name}/{ref}/model.json              ref: version number or alias
    /m/{owner}/{name}/{ref}/{quantization}/model.json
    /m/{owner}/{name}/{ref}/cut/{layer}/model.json  a transfer-learning base
    /m/{owner}/{name}/{ref}/{file}                  companions: metadata.json, labels.txt, …
    /m/{owner}/{name}/blobs/{sha256}                 weight files, by content

model.json's weight paths point at the blobs (``../blobs/<sha256>``), so a
weight file has one URL whichever version, alias or variant uses it: a
browser downloads each byte once, and a load that starts on one version
can never pick up files of another when an alias moves mid-load. Numbered
versions and blobs never change and are cached forever; aliases are
revalidated (no-cache + strong ETag, 304 on If-None-Match).

Private models are read with a session, ``Authorization: Token`` or an
access link (``?access=…``, registry/links.py), which opens its model.json
and the weights it lists only, revalidated on every use.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import re

from django.conf import settings
from django.http import (
    FileResponse,
    Http404,
    HttpResponse,
    HttpResponseNotModified,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.http import require_safe

from accounts.authentication import authenticate
from registry import cuts, downloads, links, readcache, storage
from registry.models import AccessLink, Model, Version
from registry.storage import IMMUTABLE_CACHE_CONTROL


def cache_control(model: Model, is_alias: bool, link: AccessLink | None = None) -> str:
    """Immutable for numbered versions and blobs, revalidated for aliases;
    never storable by shared caches (proxies, CDNs) for a private model, and
    through an access link, revalidated on every use."""
    if link is not None:
        # Revalidated on every use (a 304 is cheap), so a revoked or expired
        # link stops working at once, even for files the browser has cached.
        return "private, no-cache"
    scope = "public" if model.public else "private"
    return f"{scope}, no-cache" if is_alias else f"{scope}, max-age=31536000, immutable"


RANGE = re.compile(r"^bytes=(\d*)-(\d*)\Z")
GZIP_MIN_BYTES = 1024


def refused_links(view):
    """An access link that does not open what was asked, answered in words."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except links.LinkRefused as exc:
            return JsonResponse({"detail": exc.message}, status=exc.status, headers={"Cache-Control": "no-store"})

    return wrapper


def visible_model(request, owner: str, name: str) -> tuple[Model, AccessLink | None]:
    """The model, if the request may read it, and the access link it came with."""
    link = links.find(request, owner, name)
    if link is not None:
        model = link.model
    else:
        model = named_model(request, owner, name)
        if model is None or not (model.public or _may_read(request, model)):
            raise Http404("No such model.")
    origin = request.headers.get("Origin")
    if origin and not model.public and not model.allows_origin(origin):
        raise links.LinkRefused(f"{model.full_name} may not be loaded by pages on {origin}.")
    return model, link


def named_model(request, owner: str, name: str) -> Model | None:
    """The model at /m/{owner}/{name}/, whoever may read it (remembered between writes)."""
    return readcache.remember(
        request,
        ("model", owner, name),
        lambda: Model.objects.select_related("owner").filter(owner__username=owner, name=name).first(),
    )


def _may_read(request, model: Model) -> bool:
    """A private model: the session's or token's user may read it."""
    user, token = authenticate(request)
    if not user.is_authenticated:
        return False
    return readcache.remember(
        request,
        ("reads", user.pk, token.pk if token else None, model.pk),
        lambda: Model.objects.visible_to(user, token).filter(pk=model.pk).exists(),
    )


def resolve(request, owner: str, name: str, ref: str, part: str = "") -> tuple[Version, AccessLink | None]:
    model, link = visible_model(request, owner, name)
    if link is not None and (part or ref != link.ref):
        raise links.LinkRefused(f"This access link opens {link.ref}/model.json of {model.full_name} only.")
    version = readcache.remember(request, ("version", model.pk, ref), lambda: model.version_at(ref))
    if version is None:
        raise Http404("No such version.")
    return version, link


@require_safe
@refused_links
def serve_file(request, owner: str, name: str, ref: str, filename: str):
    version, link = resolve(request, owner, name, ref)
    if filename == "model.json":
        return _model_json(request, version, version.model_json_key, version.model_json_sha256, not ref.isdigit(), link)
    return _companion(request, version, filename, not ref.isdigit(), link)


@require_safe
@refused_links
def serve_variant_file(request, owner: str, name: str, ref: str, variant: str, filename: str):
    version, link = resolve(request, owner, name, ref, part=variant)
    ready = version.ready_variant(variant)
    if ready is None:
        raise Http404("This version has no such variant (yet).")
    if filename == "model.json":
        return _model_json(request, version, ready["model_json_key"], ready["model_json_sha256"], not ref.isdigit())
    return _companion(request, version, filename, not ref.isdigit())


def _companion(request, version: Version, filename: str, is_alias: bool, link: AccessLink | None = None):
    """A companion file (metadata.json, labels.txt, …) beside model.json:
    the same caching, ETag, CORS and privacy as model.json."""
    companion = version.companion(filename)
    if companion is None:
        raise Http404(f"Version {version.number} has no file named {filename[:100]!r}; weight files are under /blobs/.")
    return _version_file(
        request, version, companion["key"], companion["sha256"], is_alias, link, content_type=companion["content_type"]
    )


@require_safe
@refused_links
def serve_cut(request, owner: str, name: str, ref: str, layer: str):
    version, _ = resolve(request, owner, name, ref, part="cut")
    try:
        made = cuts.cut(version, layer)
    except cuts.CutError as exc:
        return JsonResponse({"detail": exc.message}, status=exc.status)
    return _model_json(request, version, made.model_json_key, made.model_json_sha256, not ref.isdigit())


def _model_json(request, version: Version, key: str, sha256: str, is_alias: bool, link: AccessLink | None = None):
    if request.method == "GET" and not downloads.counted_by_front(request):
        downloads.count(version.pk)
    return _version_file(request, version, key, sha256, is_alias, link)


def _version_file(
    request,
    version: Version,
    key: str,
    sha256: str,
    is_alias: bool,
    link: AccessLink | None = None,
    content_type: str = "application/json",
):
    """A small file of a version (model.json, a companion), gzipped when
    asked for, revalidated by ETag."""
    use_gzip = "gzip" in request.headers.get("Accept-Encoding", "")
    headers = {
        "ETag": f'"{sha256}"',
        "Cache-Control": cache_control(version.model, is_alias, link),
        "Vary": "Accept-Encoding",
        "X-Modelport-Version": str(version.number),
    }
    # The gzipped body is another representation, so it has its own ETag.
    matched = {f'"{sha256}"', f'"{sha256}-gz"'} & _if_none_match(request)
    if matched:
        return HttpResponseNotModified(headers={**headers, "ETag": matched.pop()})
    body = _read_stored(key)
    if use_gzip and len(body) >= GZIP_MIN_BYTES:
        body = _gzipped(body)
        headers["Content-Encoding"] = "gzip"
        headers["ETag"] = f'"{sha256}-gz"'
    response = HttpResponse(b"" if request.method == "HEAD" else body, content_type=content_type, headers=headers)
    response["Content-Length"] = str(len(body))
    return response


@functools.lru_cache(maxsize=512)
def _read_stored(key: str) -> bytes:
    """model.json and companion keys are written once and never change: cache the bytes."""
    return storage.read_blob(key)


@functools.lru_cache(maxsize=512)
def _gzipped(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=6, mtime=0)


def _if_none_match(request) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in request.headers.get("If-None-Match", "").split(",")}


@require_safe
@refused_links
def serve_blob(request, owner: str, name: str, sha256: str):
    model, link = visible_model(request, owner, name)
    if link is not None and not links.opens_blob(request, link, sha256):
        raise links.LinkRefused(f"This access link does not open this file of {model.full_name}.")
    blob = readcache.remember(request, ("blob", model.pk, sha256), lambda: model.blobs.filter(sha256=sha256).first())
    if blob is None:
        raise Http404("No such blob in this model.")
    # Through a link, blobs come from here: a signed storage URL would outlive the link's revocation.
    if settings.BLOB_DELIVERY == "redirect" and link is None and (redirect := _blob_redirect(model, blob)):
        return redirect
    etag = f'"{sha256}"'
    headers = {"ETag": etag, "Cache-Control": cache_control(model, False, link), "Accept-Ranges": "bytes"}
    if etag in _if_none_match(request):
        return HttpResponseNotModified(headers=headers)
    start, end, status = 0, blob.size - 1, 200
    if (wanted := request.headers.get("Range")) and blob.size:
        parsed = _parse_range(wanted, blob.size)
        if parsed is None:
            return HttpResponse(status=416, headers={**headers, "Content-Range": f"bytes */{blob.size}"})
        start, end, status = *parsed, 206
        headers["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
    length = end - start + 1 if blob.size else 0
    if status == 200 and request.method == "GET" and (path := storage.local_path(blob.key)):
        # The WSGI server's file wrapper (sendfile) streams it, like nginx would.
        try:
            response = FileResponse(open(path, "rb"), content_type="application/octet-stream", headers=headers)
        except FileNotFoundError as exc:
            raise storage.BlobNotFound(blob.key) from exc
        # Servers without a file wrapper (granian) get it in large reads, not 4 KiB ones.
        response.block_size = 1024 * 1024
        response["Content-Length"] = str(length)
        return response
    if request.method == "HEAD" or not length:
        body = iter(())
    elif status == 206:
        body = storage.iter_blob(blob.key, start, end)
    else:
        body = storage.iter_blob(blob.key)
    response = StreamingHttpResponse(body, status=status, content_type="application/octet-stream", headers=headers)
    response["Content-Length"] = str(length)
    return response


def _blob_redirect(model: Model, blob) -> HttpResponse | None:
    """Send the browser to the CDN (public models) or a signed storage URL.
    The target is content-addressed, so a CDN redirect is cacheable forever;
    a signed one only for part of its lifetime."""
    if model.public and settings.BLOB_BASE_URL:
        location, cache_control = f"{settings.BLOB_BASE_URL}/{blob.key}", IMMUTABLE_CACHE_CONTROL
    else:
        location = storage.signed_url(blob.key, settings.BLOB_SIGNED_URL_SECONDS)
        if location is None:
            return None
        cache_control = f"private, max-age={settings.BLOB_SIGNED_URL_SECONDS // 2}"
    return HttpResponse(status=302, headers={"Location": location, "Cache-Control": cache_control})


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` range (the form browsers send) clipped to the blob."""
    match = RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return None
    return start, end


@functools.cache
def _verify_module() -> tuple[bytes, str]:
    body = (settings.BASE_DIR / "static" / "js" / "verify.mjs").read_bytes()
    return body, hashlib.sha256(body).hexdigest()


@require_safe
def verify_module(request):
    """The ES module that loads a model with the browser checking each file
    (Subresource Integrity), at a stable URL any origin may import."""
    body, sha256 = _verify_module()
    headers = {"ETag": f'"{sha256}"', "Cache-Control": "public, max-age=3600"}
    if f'"{sha256}"' in _if_none_match(request):
        return HttpResponseNotModified(headers=headers)
    return HttpResponse(body, content_type="text/javascript; charset=utf-8", headers=headers)

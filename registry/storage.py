"""Object storage for uploads and converted models, behind a small domain API.

Local disk and S3 are one setting apart (``STORAGES["models"]``). Every key
written here is immutable: uploads live under the version's uuid and
converted files under a fresh prefix per conversion attempt, so objects can
be cached forever by browsers and CDNs.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from botocore.exceptions import BotoCoreError, ClientError
from django.core.files.storage import storages

IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
CHUNK_SIZE = 256 * 1024

mimetypes.add_type("application/octet-stream", ".bin")


class StorageError(Exception):
    """Storage is unreachable or refused an operation (a system failure)."""


class BlobNotFound(StorageError):
    pass


def _storage():
    return storages["models"]


def _is_s3(storage) -> bool:
    return hasattr(storage, "bucket")


def blob_key(sha256: str) -> str:
    """Where a weight file is stored: by its content, once for everyone."""
    return f"blobs/sha256/{sha256}"


def content_type_for(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def put_blob(key: str, fileobj: IO[bytes], sha256: str | None = None) -> None:
    """Store the whole of `fileobj` (from its start) under `key`. On local
    disk the file appears whole or not at all (temporary file + rename);
    ``sha256``, when given, is recorded with the object on S3."""
    storage = _storage()
    fileobj.seek(0)
    try:
        if _is_s3(storage):
            extra = {"ContentType": content_type_for(key), "CacheControl": IMMUTABLE_CACHE_CONTROL}
            if sha256:
                extra["Metadata"] = {"sha256": sha256}
            storage.bucket.upload_fileobj(fileobj, storage._normalize_name(key), ExtraArgs=extra)
        else:
            _put_local(Path(storage.path(key)), fileobj)
    except (BotoCoreError, ClientError, OSError) as exc:
        raise StorageError(f"could not store {key}: {exc}") from exc


def _put_local(target: Path, fileobj: IO[bytes]) -> None:
    # No fsync: a blob cut short by a crash is caught by blob_matches and written again.
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".incoming-", delete=False) as handle:
        try:
            shutil.copyfileobj(fileobj, handle, 4 * CHUNK_SIZE)
            handle.flush()
            os.chmod(handle.name, 0o644)
            os.replace(handle.name, target)
        except BaseException:
            os.unlink(handle.name)
            raise


def put_blob_file(key: str, path: Path, sha256: str) -> None:
    """Store the file at ``path`` (the caller's own, never shown to a sandbox)
    under ``key``; on local disk it is moved into place when it can be (same
    file system), so a 100 MB weight file is not copied a second time."""
    storage = _storage()
    if not _is_s3(storage):
        target = Path(storage.path(key))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(path, 0o644)
            os.replace(path, target)
            return
        except OSError:
            pass  # another file system: copy
    with path.open("rb") as handle:
        put_blob(key, handle, sha256=sha256)


def blob_matches(key: str, size: int, sha256: str) -> bool:
    """Whether a stored blob exists with this size and content: a blob left
    truncated or corrupt (or never stored) is written again."""
    storage = _storage()
    try:
        if _is_s3(storage):
            head = storage.bucket.Object(storage._normalize_name(key))
            return head.content_length == size and head.metadata.get("sha256") == sha256
        path = Path(storage.path(key))
        if path.stat().st_size != size:
            return False
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK_SIZE):
                digest.update(chunk)
        return digest.hexdigest() == sha256
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return False
        raise StorageError(f"could not stat {key}: {exc}") from exc
    except FileNotFoundError:
        return False
    except (BotoCoreError, OSError) as exc:
        raise StorageError(f"could not stat {key}: {exc}") from exc


def blob_exists(key: str) -> bool:
    try:
        blob_size(key)
    except BlobNotFound:
        return False
    return True


def blob_size(key: str) -> int:
    storage = _storage()
    try:
        if _is_s3(storage):
            return storage.bucket.Object(storage._normalize_name(key)).content_length
        return storage.size(key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            raise BlobNotFound(key) from exc
        raise StorageError(f"could not stat {key}: {exc}") from exc
    except FileNotFoundError as exc:
        raise BlobNotFound(key) from exc
    except (BotoCoreError, OSError) as exc:
        raise StorageError(f"could not stat {key}: {exc}") from exc


def iter_blob(key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Open a blob now (so a missing blob or dead storage raises here, before
    any response is sent) and return an iterator over its chunks, optionally
    only bytes ``start`` to ``end`` inclusive."""
    storage = _storage()
    try:
        if _is_s3(storage):
            extra = {"Range": f"bytes={start}-{'' if end is None else end}"} if start or end is not None else {}
            body = storage.bucket.Object(storage._normalize_name(key)).get(**extra)["Body"]
            return body.iter_chunks(CHUNK_SIZE)
        handle = storage.open(key, "rb")
        handle.seek(start)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            raise BlobNotFound(key) from exc
        raise StorageError(f"could not read {key}: {exc}") from exc
    except FileNotFoundError as exc:
        raise BlobNotFound(key) from exc
    except (BotoCoreError, OSError) as exc:
        raise StorageError(f"could not read {key}: {exc}") from exc
    return _read_chunks(handle, None if end is None else end - start + 1)


def _read_chunks(handle, remaining: int | None) -> Iterator[bytes]:
    with handle:
        while remaining is None or remaining > 0:
            chunk = handle.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


def read_blob(key: str) -> bytes:
    return b"".join(iter_blob(key))


def download_blob(key: str, destination: IO[bytes]) -> None:
    for chunk in iter_blob(key):
        destination.write(chunk)


def local_path(key: str) -> str | None:
    """The file behind a blob on local-disk storage (served with sendfile),
    or None on object storage."""
    storage = _storage()
    return None if _is_s3(storage) else storage.path(key)


def signed_url(key: str, expires: int) -> str | None:
    """A time-limited direct URL to the blob in object storage, or None when
    storage is local disk (which the app must serve itself)."""
    storage = _storage()
    if not _is_s3(storage):
        return None
    try:
        return storage.connection.meta.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": storage.bucket_name, "Key": storage._normalize_name(key)},
            ExpiresIn=expires,
        )
    except (BotoCoreError, ClientError) as exc:
        raise StorageError(f"could not sign a URL for {key}: {exc}") from exc


def delete_prefix(prefix: str) -> None:
    storage = _storage()
    prefix = prefix.rstrip("/") + "/"
    try:
        if _is_s3(storage):
            storage.bucket.objects.filter(Prefix=storage._normalize_name(prefix)).delete()
            return
        _delete_local_tree(storage, prefix.rstrip("/"))
    except (BotoCoreError, ClientError, OSError) as exc:
        raise StorageError(f"could not delete {prefix}: {exc}") from exc


def _delete_local_tree(storage, prefix: str) -> None:
    if not storage.exists(prefix):
        return
    directories, files = storage.listdir(prefix)
    for name in files:
        storage.delete(f"{prefix}/{name}")
    for name in directories:
        _delete_local_tree(storage, f"{prefix}/{name}")


def delete_blob(key: str) -> None:
    try:
        _storage().delete(key)
    except (BotoCoreError, ClientError, OSError) as exc:
        raise StorageError(f"could not delete {key}: {exc}") from exc


def configure_bucket(origins: list[str]) -> str:
    """Create the bucket if missing and set its CORS rule so browsers can
    fetch model files straight from storage or a CDN in front of it."""
    storage = _storage()
    if not _is_s3(storage):
        return "local disk storage: no bucket to configure"
    client = storage.connection.meta.client
    bucket = storage.bucket_name
    try:
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError:
            client.create_bucket(Bucket=bucket)
        client.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedOrigins": origins,
                        "AllowedMethods": ["GET", "HEAD"],
                        "AllowedHeaders": ["*"],
                        "ExposeHeaders": ["ETag", "Content-Length", "Content-Type"],
                        "MaxAgeSeconds": 86400,
                    }
                ]
            },
        )
    except (BotoCoreError, ClientError) as exc:
        raise StorageError(f"could not configure bucket {bucket}: {exc}") from exc
    return f"bucket {bucket}: CORS allows {', '.join(origins)}"

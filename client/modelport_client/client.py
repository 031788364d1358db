"""The REST API of a Modelport registry, for scripts and the CLI."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx

FINAL = ("ready", "failed")


class ModelportError(Exception):
    """The registry refused or failed a request; the message is its words."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def split_ref(spec: str) -> tuple[str, str, str | None]:
    """``owner/name[@ref]`` → (owner, name, ref or None)."""
    path, _, ref = spec.partition("@")
    owner, slash, name = path.partition("/")
    if not slash or not owner or not name or "/" in name:
        raise ModelportError(f"'{spec}' is not OWNER/NAME[@REF].")
    return owner, name, ref or None


class ProgressReader:
    """A file that reports how many bytes were read, for an upload progress bar."""

    def __init__(self, handle: IO[bytes], advance: Callable[[int], None]):
        self.handle = handle
        self.advance = advance

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.advance(len(chunk))
        return chunk

    # So the HTTP client knows the length and sends Content-Length, not chunks.
    def fileno(self) -> int:
        return self.handle.fileno()

    def tell(self) -> int:
        return self.handle.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)


class Client:
    def __init__(self, url: str, token: str | None = None, timeout: float = 60):
        headers = {"Authorization": f"Token {token}"} if token else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, follow_redirects=True)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ModelportError(f"Could not reach {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise ModelportError(_detail(response), response.status_code)
        return response

    def api(self, method: str, path: str, **kwargs):
        response = self.request(method, f"/api/v1/{path}", **kwargs)
        return response.json() if response.content else None

    # Models and versions
    def models(self, owner: str | None = None) -> list[dict]:
        return [model for model in self.api("GET", "models/") if owner in (None, model["owner"])]

    def create_model(self, owner: str, name: str, public: bool = True, exist_ok: bool = False) -> dict | None:
        try:
            return self.api("POST", "models/", json={"owner": owner, "name": name, "public": public})
        except ModelportError as exc:
            if exist_ok and exc.status == 409:
                return None
            raise

    def upload(
        self,
        owner: str,
        name: str,
        path: Path,
        variants: list[str] = (),
        input_format: str = "",
        progress: Callable[[int, int], Callable[[int], None]] | None = None,
    ) -> dict:
        """Upload a model file, or a folder (sent as one zip), as a new version."""
        with _as_upload_file(Path(path)) as (upload, filename):
            size = upload.seek(0, 2)
            upload.seek(0)
            body = ProgressReader(upload, progress(size)) if progress else upload
            data = {"variants": list(variants), **({"format": input_format} if input_format else {})}
            return self.api(
                "POST", f"models/{owner}/{name}/versions/", files={"file": (filename, body)}, data=data, timeout=None
            )

    def version(self, owner: str, name: str, ref: str | int) -> dict:
        if str(ref).isdigit():
            return self.api("GET", f"models/{owner}/{name}/versions/{ref}/")
        number = self.alias(owner, name, str(ref))["version"]
        return self.api("GET", f"models/{owner}/{name}/versions/{number}/")

    def wait(self, owner: str, name: str, number: int, timeout: float = 3600, on_poll=None) -> dict:
        deadline = time.monotonic() + timeout
        delay = 0.5
        while True:
            version = self.version(owner, name, number)
            if on_poll:
                on_poll(version)
            if version["status"] in FINAL:
                return version
            if time.monotonic() > deadline:
                raise ModelportError(f"Version {number} is still {version['status']} after {timeout:.0f} s.")
            time.sleep(delay)
            delay = min(delay * 1.5, 5)

    # Aliases
    def aliases(self, owner: str, name: str) -> list[dict]:
        return self.api("GET", f"models/{owner}/{name}/aliases/")

    def alias(self, owner: str, name: str, alias: str) -> dict:
        for row in self.aliases(owner, name):
            if row["name"] == alias:
                return row
        raise ModelportError(f"Model '{owner}/{name}' has no alias '{alias}'.", 404)

    def set_alias(self, owner: str, name: str, alias: str, number: int) -> dict:
        return self.api("PUT", f"models/{owner}/{name}/aliases/{alias}/", json={"version": number})

    def rollback(self, owner: str, name: str, alias: str) -> dict:
        return self.api("POST", f"models/{owner}/{name}/aliases/{alias}/rollback/")

    def alias_log(self, owner: str, name: str, alias: str) -> list[dict]:
        return self.api("GET", f"models/{owner}/{name}/aliases/{alias}/log/")

    # Files
    def pull(self, owner: str, name: str, ref: str, directory: Path, progress=None) -> dict:
        """model.json, its weight files and its companions (metadata.json,
        labels.txt, …) into ``directory``, ready to host anywhere: weight
        paths become local file names, each file checked against its sha256."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        response = self.request("GET", f"/m/{owner}/{name}/{ref}/model.json")
        model_json = response.json()
        number = int(response.headers.get("X-Modelport-Version", "0")) or None
        files = []
        integrity = {}
        for group in model_json.get("weightsManifest", []):
            local_paths = []
            for weight_path in group["paths"]:
                sha = weight_path.rsplit("/", 1)[-1]
                target = directory / f"{sha}.bin"
                if not target.exists() or _sha256(target) != sha:
                    self._download(f"/m/{owner}/{name}/blobs/{sha}", target, sha, progress)
                local_paths.append(target.name)
                files.append(target.name)
                if weight_path in model_json.get("integrity", {}):
                    integrity[target.name] = model_json["integrity"][weight_path]
            group["paths"] = local_paths
        if "integrity" in model_json:
            model_json["integrity"] = integrity
        (directory / "model.json").write_text(json.dumps(model_json))
        if number is not None:
            for companion in self.version(owner, name, number).get("companions", []):
                target = directory / Path(companion["name"]).name
                self._download(companion["url"], target, companion["sha256"], progress)
                files.append(target.name)
        return {"version": number, "files": ["model.json", *files]}

    def _download(self, path: str, target: Path, sha: str, progress) -> None:
        digest = hashlib.sha256()
        partial = target.with_suffix(".part")
        with self.http.stream("GET", path) as response:
            if response.status_code >= 400:
                response.read()
                raise ModelportError(_detail(response), response.status_code)
            advance = progress(int(response.headers.get("Content-Length", 0)), target.name) if progress else None
            with partial.open("wb") as out:
                for chunk in response.iter_bytes(1024 * 1024):
                    digest.update(chunk)
                    out.write(chunk)
                    if advance:
                        advance(len(chunk))
        if digest.hexdigest() != sha:
            partial.unlink()
            raise ModelportError(f"{path} did not match its sha256; nothing was kept.")
        partial.replace(target)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail") or response.text)
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


class _as_upload_file:
    """A file as is; a folder zipped (stored, not compressed: weights do not compress)."""

    def __init__(self, path: Path):
        self.path = path
        self.handle = None

    def __enter__(self):
        if self.path.is_dir():
            self.handle = tempfile.TemporaryFile()
            with zipfile.ZipFile(self.handle, "w", zipfile.ZIP_STORED) as archive:
                for file in sorted(self.path.rglob("*")):
                    if file.is_file():
                        archive.write(file, file.relative_to(self.path).as_posix())
            self.handle.seek(0)
            return self.handle, f"{self.path.name}.zip"
        if not self.path.is_file():
            raise ModelportError(f"{self.path} is neither a file nor a folder.")
        self.handle = self.path.open("rb")
        return self.handle, self.path.name

    def __exit__(self, *exc) -> None:
        self.handle.close()

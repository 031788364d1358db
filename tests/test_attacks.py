"""Every attack that once worked on Modelport's converter, through the real
pipeline (upload → sandboxed conversion → publish): refused, in words, on
the first attempt, with no file written and no secret leaked."""

from __future__ import annotations

import secrets
import time
import uuid
from pathlib import Path

import pytest

from conversions import services
from registry import services as registry_services
from registry.models import Version
from tests import attacks

pytestmark = pytest.mark.e2e
PROJECT_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture
def canaries(tmp_path) -> dict[str, Path]:
    """Two secrets on the host: one world-readable, one readable by root only."""
    found = {}
    for name, mode in (("public", 0o644), ("root-only", 0o600)):
        path = tmp_path / f"canary-{name}.txt"
        path.write_text(f"CANARY-{name}-{secrets.token_hex(16)}".ljust(256, "!"))
        path.chmod(mode)
        found[name] = path
    return found


@pytest.fixture
def markers():
    """Where hostile code would leave a mark: the host's /tmp and the project tree."""
    tag = uuid.uuid4().hex
    paths = [Path("/tmp") / f"pwned-{tag}", PROJECT_DIR / f".pwned-{tag}"]
    yield paths
    for path in paths:
        path.unlink(missing_ok=True)


@pytest.fixture
def convert(worker_sandbox, transactional_db, owner, monkeypatch, caplog, model_storage):
    monkeypatch.setattr("conversions.queue.enqueue_conversion", lambda version_id: None)
    model = registry_services.create_model(owner, "target")

    def upload_and_convert(path: Path) -> tuple[Version, float]:
        with path.open("rb") as handle:
            version = registry_services.upload_version(model, owner, handle, path.name)
        started = time.monotonic()
        services.convert(version.pk)
        version.refresh_from_db()
        return version, time.monotonic() - started

    return upload_and_convert


def assert_contained(version: Version, canaries: dict, markers: list[Path], caplog, model_storage) -> None:
    assert version.status == "failed"
    assert version.failure == "user"
    assert version.attempts == 1  # refused on the first attempt, never retried
    for marker in markers:
        assert not marker.exists(), f"{marker} was written"
    stored = b"".join(p.read_bytes() for p in model_storage.rglob("*") if p.is_file())
    for canary in canaries.values():
        secret = canary.read_text()[:40]
        assert secret not in version.error
        assert secret not in caplog.text
        assert secret.encode() not in stored


def test_saved_model_initializer_that_reads_and_writes_files_never_runs(
    convert, tmp_path, canaries, markers, caplog, model_storage
):
    path = attacks.saved_model_with_io_initializer(tmp_path, canaries["root-only"], markers[1])
    for marker in markers:
        marker.unlink(missing_ok=True)
    version, seconds = convert(path)
    assert_contained(version, canaries, markers, caplog, model_storage)
    assert version.error.startswith("The SavedModel uses the op 'ReadFile' (in function '")
    assert version.error.endswith(
        "which reads or writes files, prints or runs Python; Modelport refuses such SavedModels before "
        "TensorFlow loads them."
    )
    assert version.input_format == "saved-model"
    assert seconds < 60


def test_cell_wrapper_with_a_lambda_residual_fn_never_runs(convert, tmp_path, canaries, markers, caplog, model_storage):
    path = attacks.h5_with_residual_fn(tmp_path, markers[0])
    version, seconds = convert(path)
    assert_contained(version, canaries, markers, caplog, model_storage)
    assert version.error == (
        "Layer 'rnn' uses a ResidualWrapper (an RNN cell wrapper), which can carry Python functions; "
        "Modelport never runs code from an upload and TF.js has no such wrapper."
    )
    assert seconds < 60


def test_h5_external_dataset_never_reads_server_files(convert, tmp_path, canaries, markers, caplog, model_storage):
    path = attacks.h5_with_external_embedding(tmp_path, [canaries["public"], canaries["root-only"]])
    version, seconds = convert(path)
    assert_contained(version, canaries, markers, caplog, model_storage)
    assert version.error.startswith("The .h5 file holds an external dataset '/model_weights/emb/emb/")
    assert version.error.endswith("whose bytes come from other files; it was refused.")
    assert seconds < 60


def test_keras3_config_naming_a_python_function_is_refused(convert, tmp_path, canaries, markers, caplog, model_storage):
    version, _ = convert(attacks.keras3_with_function_object(tmp_path))
    assert_contained(version, canaries, markers, caplog, model_storage)
    assert version.error == (
        "Layer 'dense' holds a serialized Python function (pickle.loads); Modelport never runs code from "
        "an upload. Use built-in activations by name."
    )


def test_tiny_tar_bz2_declaring_a_huge_member_is_refused_at_once(
    convert, tmp_path, canaries, markers, caplog, model_storage
):
    path = attacks.tar_bz2_declaring(tmp_path, 4 * 1024**3)
    assert path.stat().st_size < 4096
    version, seconds = convert(path)
    assert_contained(version, canaries, markers, caplog, model_storage)
    assert version.error == "The archive's compression ratio is suspiciously high (a zip bomb?); it was refused."
    assert seconds < 10


def test_archive_with_a_file_where_a_directory_must_be_fails_once_in_words(
    convert, tmp_path, canaries, markers, caplog, model_storage
):
    version, seconds = convert(attacks.zip_with_file_directory_clash(tmp_path))
    assert_contained(version, canaries, markers, caplog, model_storage)
    assert version.error == "The archive holds 'm/variables' both as a file and as a directory; it was refused."
    assert seconds < 10


def test_without_a_sandbox_conversions_fail_closed_in_words(
    convert, tmp_path, worker_sandbox, monkeypatch, model_storage
):
    worker_sandbox.stop()
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on this PATH
    from tests import zoo

    version, _ = convert(zoo.keras2_cnn_h5(tmp_path).path)
    assert (version.status, version.failure) == ("failed", "system")
    assert version.error == (
        "Modelport could not convert this upload: bubblewrap (bwrap) is not installed, so the converter "
        "sandbox cannot be created (install the Debian package 'bubblewrap')."
    )
    assert not any(p.is_file() and "artifacts" in p.parts for p in model_storage.rglob("*"))

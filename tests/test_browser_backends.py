"""After a version is ready, its worker runs it in headless Chromium on
TF.js' wasm and webgl backends, inside the sandbox, and records per-backend
parity against TensorFlow and timings on the version."""

from __future__ import annotations

import numpy as np
import pytest

from conversions import services
from registry import services as registry_services
from registry.models import Version

pytestmark = pytest.mark.e2e


@pytest.fixture
def convert(worker_sandbox, transactional_db, owner, monkeypatch, model_storage, settings):
    monkeypatch.setattr("conversions.queue.enqueue_conversion", lambda version_id: None)
    settings.BROWSER_BACKENDS = ["wasm", "webgl"]

    def upload_and_convert(model_name: str, path, **options) -> Version:
        model = registry_services.create_model(owner, model_name)
        with path.open("rb") as handle:
            version = registry_services.upload_version(model, owner, handle, path.name, **options)
        services.convert(version.pk)
        version.refresh_from_db()
        return version

    return upload_and_convert


def small_cnn(tmp_path, activation="relu"):
    import keras

    keras.utils.set_random_seed(31)
    model = keras.Sequential(
        [keras.Input((12, 12, 3)), keras.layers.Conv2D(4, 3, activation=activation),
         keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)],
    )  # fmt: skip
    path = tmp_path / "cnn.keras"
    model.save(path)
    return path


def test_ready_version_records_parity_and_timings_on_wasm_and_webgl(convert, tmp_path):
    version = convert("cnn", small_cnn(tmp_path))

    assert version.status == Version.Status.READY, version.error
    assert set(version.backends) == {"wasm", "webgl"}
    for name, outcome in version.backends.items():
        assert outcome["status"] == "passed", (name, outcome)
        assert 0 <= outcome["max_abs_error"] <= outcome["atol"] + outcome["rtol"]
        assert outcome["load_ms"] > 0 and outcome["first_predict_ms"] > 0


def test_api_and_page_say_where_the_version_was_verified(convert, tmp_path, client):
    version = convert("cnn", small_cnn(tmp_path))

    body = client.get("/api/v1/models/alice/cnn/versions/1/").json()
    assert [backend["name"] for backend in body["backends"]] == ["cpu", "wasm", "webgl"]
    assert body["backends"][0]["status"] == "passed"  # Node, the gate of ready
    assert body["backends"][0]["max_abs_error"] == version.parity["max_abs_error"]
    assert all(backend["status"] == "passed" for backend in body["backends"])
    page = client.get("/alice/cnn/").content.decode()
    assert "Verified on cpu, wasm, webgl" in page


def test_outputs_beyond_the_tolerance_are_a_failed_backend_with_its_figures():
    from converter import browsers, parity

    expected = [np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)]
    outcome = {
        "outputs": [{"shape": [2, 3], "data": list(expected[0].ravel() + 0.5)}],
        "load_ms": 3,
        "first_predict_ms": 2,
    }

    judged = browsers._judge(outcome, expected, parity.Tolerance())

    assert judged["status"] == "failed"
    assert judged["max_abs_error"] == pytest.approx(0.5)
    assert browsers._judge({"error": "WebGL is not supported"}, expected, parity.Tolerance()) == {
        "status": "error",
        "error": "WebGL is not supported",
    }


def test_a_failed_backend_is_shown_not_hidden(client, public_model_with_failed_webgl):
    body = client.get("/api/v1/models/alice/digits/versions/1/").json()
    assert [(b["name"], b["status"]) for b in body["backends"]] == [
        ("cpu", "passed"),
        ("wasm", "passed"),
        ("webgl", "failed"),
    ]
    page = client.get("/alice/digits/").content.decode()
    assert "Verified on cpu, wasm" in page
    assert "webgl: failed (max error 0.5)" in page


@pytest.fixture
def public_model_with_failed_webgl(owner, db):
    from tests.test_web import PARITY, add_ready_version

    model = registry_services.create_model(owner, "digits", public=True)
    backends = {
        "wasm": {"status": "passed", "error": "", "max_abs_error": 1e-6, "atol": 1e-4, "rtol": 1e-3, "load_ms": 20.0,
                 "first_predict_ms": 4.0},
        "webgl": {"status": "failed", "error": "", "max_abs_error": 0.5, "atol": 1e-4, "rtol": 1e-3, "load_ms": 30.0,
                  "first_predict_ms": 900.0},
    }  # fmt: skip
    add_ready_version(model, 1, parity=PARITY, backends=backends)
    return model


def test_with_the_required_setting_a_failing_backend_fails_the_version_in_words():
    from conversions.services import _require_browsers
    from converter.errors import ConversionError

    with pytest.raises(ConversionError) as failed:
        _require_browsers({"wasm": {"status": "passed"}, "webgl": {"status": "failed", "max_abs_error": 0.5}})
    assert str(failed.value) == (
        "TF.js' webgl backend in Chromium did not reproduce TensorFlow: max absolute error 0.5 is beyond the tolerance"
    )


def test_with_the_required_setting_the_check_runs_before_ready(convert, tmp_path, settings):
    settings.BROWSER_BACKENDS_REQUIRED = True

    version = convert("cnn", small_cnn(tmp_path))

    assert version.status == Version.Status.READY, version.error
    assert [version.backends[name]["status"] for name in ("wasm", "webgl")] == ["passed", "passed"]


def test_the_graph_variant_is_run_in_chromium_too(convert, tmp_path, client):
    version = convert("cnn", small_cnn(tmp_path), variants=["graph"])

    graph = version.variants["graph"]
    assert graph["status"] == "ready", graph.get("error")
    assert [graph["backends"][name]["status"] for name in ("wasm", "webgl")] == ["passed", "passed"]
    (row,) = client.get("/api/v1/models/alice/cnn/versions/1/").json()["variants"]
    assert [(b["name"], b["status"]) for b in row["backends"]] == [
        ("cpu", "passed"),
        ("wasm", "passed"),
        ("webgl", "passed"),
    ]
    assert row["backends"][0]["max_abs_error"] == graph["parity"]["max_abs_error"]


def test_a_second_job_in_a_job_directory_never_writes_through_a_link_the_first_left(tmp_path):
    """The browser check is a second job in the directory a hostile conversion
    wrote to: its request must not follow a request.json link to a host file."""
    from conversions.sandbox import _write_new

    victim = tmp_path / "host-file"
    victim.write_text("host data")
    job = tmp_path / "job"
    job.mkdir()
    (job / "request.json").symlink_to(victim)

    _write_new(job, "request.json", b'{"action": "verify-browsers"}')

    assert victim.read_text() == "host data"
    assert not (job / "request.json").is_symlink()
    assert (job / "request.json").read_bytes() == b'{"action": "verify-browsers"}'


@pytest.mark.parametrize("figure", [float("inf"), float("nan"), 10**400, -1.0, "12"])
def test_figures_a_child_forged_are_an_error_not_a_pass(figure):
    from conversions.results import clean_backends

    forged = {"ok": True, "backends": {"wasm": {"status": "passed", "max_abs_error": figure}}}

    assert clean_backends(forged, ["wasm"])["wasm"]["status"] == ("passed" if figure == "12" else "error")


def test_a_check_whose_worker_died_is_not_pending_forever(owner, db, settings):
    from datetime import timedelta

    from django.utils import timezone

    from registry.api.serializers import backend_rows
    from tests.test_web import PARITY, add_ready_version

    model = registry_services.create_model(owner, "digits", public=True)
    long_ago = (timezone.now() - timedelta(seconds=5 * settings.BROWSER_CHECK_SECONDS)).isoformat()
    version = add_ready_version(
        model, 1, parity=PARITY, backends={"wasm": {"status": "pending", "since": long_ago},
                                           "webgl": {"status": "pending", "since": timezone.now().isoformat()}},
    )  # fmt: skip

    rows = {row["name"]: row for row in backend_rows(version)}

    assert rows["wasm"]["status"] == "error" and "did not finish" in rows["wasm"]["error"]
    assert rows["webgl"]["status"] == "pending"

"""Run a converted model where it will run: headless Chromium on TF.js'
wasm and webgl backends (WebGL through SwiftShader), on the inputs of the
parity check, held against TensorFlow's answers.

The conversion job leaves its proof in ``reference/`` beside ``output/``;
the verification job, in the same sandbox and job directory, reads both.
A backend that fails or exceeds the tolerance is reported as such.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from converter import parity
from converter.errors import ConversionError
from converter.formats import BROWSER_BACKENDS as BACKENDS

BROWSERS_JS = parity.PROJECT_DIR / "converter" / "js" / "browsers.mjs"
REFERENCE = "reference"


def reference_dir(workdir: Path, variant: str = "") -> Path:
    return workdir / (f"{REFERENCE}-{variant}" if variant else REFERENCE)


def save_reference(proof: parity.Proof, workdir: Path, variant: str = "") -> None:
    """Keep the proof's inputs and TensorFlow's outputs for a later check:
    reference.json is browsers.mjs' input spec, plus the kind of model and
    how many outputs TensorFlow gave."""
    directory = reference_dir(workdir, variant)
    directory.mkdir(exist_ok=True)
    spec = parity.write_inputs(proof.inputs, directory, "input", proof.input_names, proof.output_names)
    for index, array in enumerate(proof.expected):
        np.save(directory / f"expected-{index}.npy", np.asarray(array, dtype=np.float32), allow_pickle=False)
    (directory / "reference.json").write_text(json.dumps({**spec, "kind": proof.kind, "expected": len(proof.expected)}))


def verify(workdir: Path, request: dict) -> dict:
    """{"backends": {name: {"status": "passed" | "failed" | "error", ...}}} for the
    model in ``output`` (or a variant's ``output-<variant>`` with its own reference)."""
    variant = str(request.get("variant") or "")
    if variant and not variant.isalnum():
        raise ConversionError("Unknown variant.")
    directory = reference_dir(workdir, variant)
    model_dir = workdir / (f"output-{variant}" if variant else "output")
    try:
        description = json.loads((directory / "reference.json").read_text())
    except (OSError, ValueError):
        raise ConversionError("This version has no parity reference to check browsers against.") from None
    tolerance = parity.Tolerance(float(request.get("atol", 1e-4)), float(request.get("rtol", 1e-3)))
    backends = [name for name in request.get("backends", BACKENDS) if name in BACKENDS]
    command = [
        "node", str(BROWSERS_JS), "--dir", str(model_dir), "--kind", description["kind"],
        "--inputs", str(directory / "reference.json"), "--backends", ",".join(backends),
        "--chromium", str(request.get("chromium") or "/usr/bin/chromium"),
    ]  # fmt: skip
    timeout = float(request.get("timeout_seconds", 120))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=workdir)
    except subprocess.TimeoutExpired:
        raise ConversionError(f"The browser check took longer than {timeout:g} s.") from None
    if done.returncode != 0:
        raise ConversionError(f"Chromium could not run the check: {parity.first_error(done.stderr)[:300]}")
    report = json.loads(done.stdout)["backends"]
    expected = [np.load(directory / f"expected-{i}.npy", allow_pickle=False) for i in range(description["expected"])]
    return {"backends": {name: _judge(report.get(name) or {}, expected, tolerance) for name in backends}}


def _judge(outcome: dict, expected: list[np.ndarray], tolerance: parity.Tolerance) -> dict:
    if "error" in outcome or "outputs" not in outcome:
        return {"status": "error", "error": str(outcome.get("error") or "The backend returned nothing.")}
    timings = {key: float(outcome[key]) for key in ("load_ms", "first_predict_ms") if key in outcome}
    actual = [np.asarray(out["data"], dtype=np.float64).reshape(out["shape"]) for out in outcome["outputs"]]
    try:
        figures = parity.compare(expected, actual, tolerance)
    except ConversionError as exc:
        return {"status": "failed", "error": str(exc), **timings}
    status = "passed" if figures.pop("passed") else "failed"
    return {"status": status, **figures, **timings}

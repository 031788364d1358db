"""Prove a conversion: run the converted model in real TF.js (Node) and the
original in TensorFlow on the same deterministic inputs, and compare.

Runs inside the sandbox, next to the converter; no Django here.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converter.errors import ConversionError

PROJECT_DIR = Path(__file__).resolve().parent.parent
PREDICT_JS = PROJECT_DIR / "converter" / "js" / "predict.mjs"
BATCH = 2
RAW_TYPES = {"float32": "<f4", "int32": "<i4", "bool": "u1"}
FREE_DIMENSION = 16
LARGE_EXAMPLE = 64 * 64 * 3  # values per example above which the parity batch is 1


@dataclass(frozen=True)
class Tolerance:
    atol: float = 1e-4
    rtol: float = 1e-3


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int | None, ...]
    dtype: str

    def concrete_shape(self) -> list[int]:
        dims = [FREE_DIMENSION if d is None else int(d) for d in self.shape[1:]]
        # Two examples prove the batch dimension is handled; one is enough for big ones (ResNet's 224×224).
        batch = BATCH if math.prod(dims) <= LARGE_EXAMPLE else 1
        return [batch if self.shape[0] is None else int(self.shape[0]), *dims]


def make_inputs(specs: list[InputSpec], seed: int = 20240611) -> list[np.ndarray]:
    """Deterministic inputs: floats in [-1, 1), integers in [0, 10)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in specs:
        shape = spec.concrete_shape()
        if spec.dtype.startswith(("int", "uint")):
            arrays.append(rng.integers(0, 10, size=shape).astype(np.int32))
        elif spec.dtype == "bool":
            arrays.append(rng.integers(0, 2, size=shape).astype(bool))
        else:
            arrays.append(rng.uniform(-1, 1, size=shape).astype(np.float32))
    return arrays


def _tfjs_dtype(array: np.ndarray) -> str:
    if array.dtype == bool:
        return "bool"
    return "int32" if np.issubdtype(array.dtype, np.integer) else "float32"


def write_inputs(
    inputs: list[np.ndarray],
    directory: Path,
    prefix: str,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
) -> dict:
    """Write the inputs as raw little-endian files; return the input spec
    predict.mjs and browsers.mjs read (see predict.mjs)."""
    spec: dict = {"inputs": []}
    for index, array in enumerate(inputs):
        dtype = _tfjs_dtype(array)
        raw = directory / f"{prefix}-{index}.bin"
        raw.write_bytes(np.ascontiguousarray(array).astype(RAW_TYPES[dtype]).tobytes())
        spec["inputs"].append({"shape": list(array.shape), "dtype": dtype, "file": str(raw)})
    if input_names:
        for item, name in zip(spec["inputs"], input_names, strict=True):
            item["name"] = name
    if output_names:
        spec["outputs"] = output_names
    return spec


def first_error(stderr: str) -> str:
    """The line of a Node process' error output worth showing a user."""
    lines = stderr.strip().splitlines()
    return next((line for line in lines if "Error" in line), lines[0] if lines else "unknown error")


def run_tfjs(
    model_dir: Path,
    kind: str,
    inputs: list[np.ndarray],
    workdir: Path,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    timeout: float = 600,
) -> list[np.ndarray]:
    spec = write_inputs(inputs, workdir, "parity-input", input_names, output_names)
    inputs_path = workdir / "parity-inputs.json"
    inputs_path.write_text(json.dumps(spec))
    command = ["node", str(PREDICT_JS), "--dir", str(model_dir), "--kind", kind, "--inputs", str(inputs_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=workdir)
    if done.returncode != 0:
        raise ConversionError(f"TF.js could not run the converted model: {first_error(done.stderr)[:500]}")
    outputs = json.loads(done.stdout)["outputs"]
    return [np.asarray(out["data"], dtype=np.float64).reshape(out["shape"]) for out in outputs]


def compare(expected: list[np.ndarray], actual: list[np.ndarray], tolerance: Tolerance) -> dict:
    if len(expected) != len(actual):
        raise ConversionError(f"TF.js returned {len(actual)} outputs, TensorFlow {len(expected)}.")
    max_abs = 0.0
    max_rel = 0.0
    within = True
    for want, got in zip(expected, actual, strict=True):
        want = np.asarray(want, dtype=np.float64)
        if want.shape != got.shape:
            raise ConversionError(
                f"TF.js returned an output of shape {list(got.shape)}, TensorFlow {list(want.shape)}."
            )
        if want.size == 0:
            continue
        if not np.all(np.isfinite(want)):
            raise ConversionError(
                "TensorFlow's own outputs hold NaN or infinite values on ordinary inputs (untrained weights "
                "that overflow?), so TF.js cannot be checked against them."
            )
        if not np.all(np.isfinite(got)):
            raise ConversionError("TF.js returned NaN or infinite values where TensorFlow's outputs are finite.")
        error = np.abs(got - want)
        max_abs = max(max_abs, float(error.max()))
        max_rel = max(max_rel, float(error.max() / max(float(np.abs(want).max()), 1e-12)))
        within = within and bool(np.all(error <= tolerance.atol + tolerance.rtol * np.abs(want)))
    return {
        "max_abs_error": max_abs,
        "max_rel_error": max_rel,
        "atol": tolerance.atol,
        "rtol": tolerance.rtol,
        "passed": within,
    }


def check(
    expected: list[np.ndarray],
    actual: list[np.ndarray],
    tolerance: Tolerance,
    specs: list[InputSpec],
    inputs: list[np.ndarray],
) -> dict:
    figures = compare(expected, actual, tolerance)
    figures["inputs"] = [
        {"name": spec.name, "shape": list(array.shape), "dtype": str(array.dtype)}
        for spec, array in zip(specs, inputs, strict=True)
    ]
    if not figures["passed"]:
        raise ConversionError(
            "TF.js predictions differ from TensorFlow's: max absolute error "
            f"{figures['max_abs_error']:.3g}, max relative error {figures['max_rel_error']:.3g} "
            f"(allowed {tolerance.atol:g} + {tolerance.rtol:g}×|value|).",
            parity=figures,
        )
    return figures


@dataclass
class Proof:
    """TensorFlow's answers on fixed inputs, to hold any TF.js output against."""

    kind: str  # "layers" or "graph"
    specs: list[InputSpec]
    inputs: list[np.ndarray]
    expected: list[np.ndarray]
    input_names: list[str] | None = None
    output_names: list[str] | None = None
    layers: list[dict] = field(default_factory=list)

    def check(self, model_dir: Path, workdir: Path, tolerance: Tolerance) -> dict:
        actual = run_tfjs(model_dir, self.kind, self.inputs, workdir, self.input_names, self.output_names)
        return check(self.expected, actual, tolerance, self.specs, self.inputs)


def keras2_proof(h5_path: Path) -> Proof:
    return keras_model_proof(load_keras2(h5_path), keras2_output_shape)


def keras2_output_shape(layer) -> list | None:
    try:
        shape = layer.output_shape
    except (AttributeError, RuntimeError):  # shared layers have several
        return None
    if isinstance(shape, list):
        return [list(item) for item in shape]
    return list(shape)


def keras3_proof(path: Path) -> Proof:
    """Reference for a Keras 3 file whose every class was already checked to
    be a built-in layer (converter/keras3.py)."""
    return keras_model_proof(load_keras3(path), keras3_output_shape)


def load_keras3(path: Path):
    """The Keras 3 model of a file whose config was already checked (built-in
    classes only, no serialized code); cached per path."""
    if path not in _loaded:
        import keras

        try:
            _loaded[path] = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:  # untrusted file: any failure is the file's
            raise ConversionError(f"Keras could not rebuild the model to check it: {str(exc)[:300]}") from None
    return _loaded[path]


def keras3_output_shape(layer) -> list | None:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):  # shared layers have several outputs
        return None
    return list(shape)


def graph_proof(saved_model_dir: Path, signature: str, model_json: dict) -> Proof:
    specs, predict, input_names, output_names = graph_reference(saved_model_dir, signature, model_json)
    inputs = make_inputs(specs)
    return Proof("graph", specs, inputs, predict(inputs), input_names, output_names)


def load_keras2(h5_path: Path):
    """The tf-keras model of an .h5 whose config was already checked to hold
    only built-in classes (no Lambda, no custom code); cached per path."""
    if h5_path not in _loaded:
        import tf_keras

        try:
            model = tf_keras.models.load_model(h5_path, compile=False)
        except Exception as exc:  # untrusted file: any failure is the file's
            raise ConversionError(f"TensorFlow could not rebuild the model to check it: {str(exc)[:300]}") from None
        _loaded[h5_path] = model
    return _loaded[h5_path]


_loaded: dict = {}


def keras2_reference(h5_path: Path):
    """Specs, a predict function and the layer table for a checked tf-keras .h5."""
    model = load_keras2(h5_path)
    return _input_specs(model), _predictor(model), _layer_table(model, keras2_output_shape)


def keras_model_proof(model, output_shape) -> Proof:
    """The proof for a built Keras model (tf-keras or Keras 3); ``output_shape``
    reads a layer's output shape the way that Keras exposes it."""
    specs = _input_specs(model)
    inputs = make_inputs(specs)
    return Proof("layers", specs, inputs, _predictor(model)(inputs), layers=_layer_table(model, output_shape))


def _input_specs(model) -> list[InputSpec]:
    return [InputSpec(t.name, tuple(t.shape), str(getattr(t.dtype, "name", t.dtype))) for t in model.inputs]


def _predictor(model):
    def predict(inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        return [np.asarray(o) for o in outputs]

    return predict


def _layer_table(model, output_shape) -> list[dict]:
    return [
        {"name": layer.name, "class_name": type(layer).__name__, "output_shape": output_shape(layer)}
        for layer in model.layers
    ]


def graph_reference(saved_model_dir: Path, signature: str, model_json: dict):
    """Specs, predict function and TF.js node names for a SavedModel signature."""
    import tensorflow as tf

    from converter import saved_model

    function = saved_model.load(saved_model_dir).signatures[signature]
    _, kwargs = function.structured_input_signature
    keys = sorted(kwargs)
    tfjs_signature = model_json.get("signature") or {}
    tfjs_inputs = tfjs_signature.get("inputs", {})
    tfjs_outputs = tfjs_signature.get("outputs", {})
    specs = [InputSpec(key, tuple(kwargs[key].shape.as_list()), kwargs[key].dtype.name) for key in keys]
    output_keys = sorted(function.structured_outputs)
    input_names = [tfjs_inputs[key]["name"] for key in keys] if all(k in tfjs_inputs for k in keys) else None
    output_names = (
        [tfjs_outputs[key]["name"] for key in output_keys] if all(k in tfjs_outputs for k in output_keys) else None
    )

    def predict(inputs: list[np.ndarray]) -> list[np.ndarray]:
        result = function(**{key: tf.constant(array) for key, array in zip(keys, inputs, strict=True)})
        return [np.asarray(result[key]) for key in output_keys]

    return specs, predict, input_names, output_names

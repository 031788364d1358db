"""The converter that runs inside the sandbox, in a child forked by
converter/zygote.py for each job.

It sees only its job directory: the upload, as the worker downloaded it,
and what it writes itself. It imports no Django and holds no secrets. It
reads its request from ``request.json``, works out what the upload is
(unpacking archives here, never in the server), converts, proves and
writes ``result.json``; the worker treats everything it writes as untrusted.
"""

from __future__ import annotations

import json
import shutil
import traceback
from pathlib import Path

from converter import (
    archive,
    browsers,
    companions,
    formats,
    hdf5,
    keras2,
    keras3,
    keras_graph,
    keras_saved_model,
    layout,
    modeljson,
    parity,
    saved_model,
    tfjs_input,
)
from converter.errors import ConversionError, NotExpressible
from converter.formats import (
    GRAPH_MODEL,
    GRAPH_VARIANT,
    KERAS_H5,
    KERAS_SAVED_MODEL,
    KERAS_V3,
    LAYERS_MODEL,
    SAVED_MODEL,
    TFJS,
    UPLOAD_SUFFIXES,
)

# Quantized weights trade accuracy for size; these bound how much.
VARIANT_TOLERANCES = {
    "float16": parity.Tolerance(atol=1e-3, rtol=1e-2),
    "uint16": parity.Tolerance(atol=1e-3, rtol=1e-2),
    "uint8": parity.Tolerance(atol=5e-2, rtol=5e-2),
}


def open_upload(workdir: Path, requested: str, facts: dict) -> tuple[str, Path]:
    """The upload's format and the path of the model in it: a file, or the
    directory of an unpacked archive. Records the format in ``facts``."""
    upload = workdir / "upload"
    kind = requested or formats.detect_file(upload)
    if kind in (KERAS_H5, KERAS_V3):
        facts["input_format"] = kind
        source = upload.rename(upload.with_suffix(UPLOAD_SUFFIXES[kind]))
        if kind == KERAS_H5:
            hdf5.check_self_contained(source, "The .h5 file")
        return kind, source
    unpacked = workdir / "input"
    archive.extract(upload, unpacked)
    if requested:
        input_format, source = requested, formats.model_dir(unpacked, requested)
    else:
        input_format, source = formats.detect_tree(unpacked)
    facts["input_format"] = input_format
    return input_format, source


def gather_companions(request: dict, workdir: Path, input_format: str, source: Path) -> dict:
    """The companion files beside the model and those sent with it, checked
    and copied out for the worker (converter/companions.py)."""
    found: list[Path] = []
    if input_format == TFJS:
        found = companions.candidates(source, tfjs_input.model_files(source))
    elif source.is_dir():
        found = companions.candidates(source, set())
    sent: list[Path] = []
    if request.get("companions_archive"):
        unpacked = workdir / "companions-in"
        archive.extract(workdir / "companions-upload", unpacked)
        sent = sorted(path for path in unpacked.iterdir() if path.is_file() and not path.is_symlink())
    return companions.collect(found, sent, workdir)


def _is_keras2(input_format: str, source: Path) -> bool:
    return input_format == KERAS_H5 and not keras2.read_h5_config(source)[0].startswith("3")


def _built_keras(keras2_file: bool, source: Path):
    """(model, output-shape function): Keras builds the model. Only once every
    safety check of the layers route has passed on the whole config."""
    if keras2_file:
        return parity.load_keras2(source), parity.keras2_output_shape
    return parity.load_keras3(source), parity.keras3_output_shape


def convert_keras(input_format: str, source: Path, output: Path, workdir: Path, shard_bytes: int):
    """A Keras file as a layers model when TF.js layers can express it
    exactly, otherwise as a graph model (and the result says why)."""
    keras2_file = _is_keras2(input_format, source)
    try:
        if keras2_file:
            return keras2.convert_keras_h5(source, output, shard_bytes)
        keras3.convert_keras3(source, output, shard_bytes)
        return {"output_format": LAYERS_MODEL}, parity.keras3_proof(source)
    except NotExpressible as reason:
        shutil.rmtree(output, ignore_errors=True)
        # Both routes ran every safety check on the whole config before giving up.
        model, output_shape = _built_keras(keras2_file, source)
        try:
            result, proof = keras_graph.convert(model, output, workdir, shard_bytes, output_shape)
        except ConversionError as exc:
            raise ConversionError(
                f"{reason} A TF.js graph model was tried instead and failed: {exc}", parity=exc.parity
            ) from None
        result["graph_reason"] = f"{reason} Served as a graph model."
    proof.layers = []  # no layers to cut at in a graph model
    return result, proof


def run(request: dict, workdir: Path, facts: dict) -> dict:
    output = workdir / "output"
    shard_bytes = int(request["shard_bytes"])
    tolerance = parity.Tolerance(float(request.get("atol", 1e-4)), float(request.get("rtol", 1e-3)))
    signature = request.get("signature") or "serving_default"
    input_format, source = open_upload(workdir, request.get("format") or "", facts)
    if input_format not in formats.INPUT_FORMATS:
        raise ConversionError(f"Unknown input format {input_format!r}.")
    extras = gather_companions(request, workdir, input_format, source)
    if input_format in (KERAS_H5, KERAS_V3):
        result, proof = convert_keras(input_format, source, output, workdir, shard_bytes)
    elif input_format == KERAS_SAVED_MODEL and keras_saved_model.is_legacy_keras_saved_model(source):
        try:
            h5_path = keras_saved_model.convert_legacy_keras_saved_model(source, output, shard_bytes)
        except keras_saved_model.NoLayersTopology:
            result = saved_model.convert(source, output, shard_bytes, signature)
            proof = parity.graph_proof(source, signature, json.loads((output / "model.json").read_text()))
        else:
            keras2.fix_keras2_topology(output)
            result, proof = {"output_format": LAYERS_MODEL}, parity.keras2_proof(h5_path)
    elif input_format in (SAVED_MODEL, KERAS_SAVED_MODEL):
        result = saved_model.convert(source, output, shard_bytes, signature)
        proof = parity.graph_proof(source, signature, json.loads((output / "model.json").read_text()))
    else:
        result, proof = tfjs_input.normalise(source, output, shard_bytes), None
    result.update(extras)
    layout.regroup(output, shard_bytes)
    if input_format == TFJS:
        if result["output_format"] == GRAPH_MODEL:
            return finish(result, tfjs_input.graph_self_check(output, workdir), [], request, output, no_reference=True)
        proof = tfjs_input.layers_proof(output)
    figures = proof.check(output, workdir, tolerance)
    browsers.save_reference(proof, workdir)
    result["variants"] = {}
    for variant in request.get("variants", []):
        if variant == GRAPH_VARIANT and input_format not in (KERAS_H5, KERAS_V3):
            result["variants"][variant] = {"ok": False, "error": "A graph variant is made from Keras uploads only."}
        elif variant == GRAPH_VARIANT and result["output_format"] != LAYERS_MODEL:
            result["variants"][variant] = {"ok": False, "error": "This version is a graph model already."}
        elif variant == GRAPH_VARIANT:
            result["variants"][variant] = graph_variant(input_format, source, output, workdir, shard_bytes, tolerance)
        else:
            result["variants"][variant] = make_variant(output, workdir, variant, shard_bytes, proof)
    return finish(result, figures, proof.layers, request, output)


def graph_variant(input_format: str, source: Path, output: Path, workdir: Path, shard_bytes: int, tolerance) -> dict:
    """A TF.js graph model of a Keras upload served as a layers model, in
    ``output-graph``, proven against Keras like any graph model."""
    target = output.parent / f"{output.name}-{GRAPH_VARIANT}"
    model, output_shape = _built_keras(_is_keras2(input_format, source), source)
    try:
        _, proof = keras_graph.convert(model, target, workdir, shard_bytes, output_shape)
        layout.regroup(target, shard_bytes)
        figures = proof.check(target, workdir, tolerance)
        browsers.save_reference(proof, workdir, GRAPH_VARIANT)
        return {"ok": True, "parity": figures}
    except ConversionError as exc:
        return {"ok": False, "error": str(exc), "parity": exc.parity}


def finish(
    result: dict, figures: dict, layers: list[dict], request: dict, output: Path, no_reference: bool = False
) -> dict:
    result["parity"] = figures
    if result["output_format"] == GRAPH_MODEL:  # nodes to ask for with model.execute(inputs, name)
        layers = modeljson.graph_nodes(json.loads((output / "model.json").read_text()))
    result["layers"] = layers
    if no_reference:
        result["variants"] = {
            quantization: {
                "ok": False,
                "error": "Variants are checked against TensorFlow; this upload has no original.",
            }
            for quantization in request.get("variants", [])
        }
    import tensorflowjs

    result["converter_version"] = f"tensorflowjs {tensorflowjs.__version__}"
    return result


def make_variant(output: Path, workdir: Path, quantization: str, shard_bytes: int, proof: parity.Proof) -> dict:
    """Write a quantized copy of the verified output to ``output-<q>`` and
    prove it against TensorFlow with the looser tolerance quantization needs."""
    from tensorflowjs import read_weights, write_weights

    if quantization not in VARIANT_TOLERANCES:
        return {"ok": False, "error": f"Unknown quantization {quantization!r}."}
    target = output.parent / f"{output.name}-{quantization}"
    model_json = json.loads((output / "model.json").read_text())
    groups = read_weights.read_weights(model_json["weightsManifest"], str(output))
    target.mkdir()
    model_json["weightsManifest"] = write_weights.write_weights(
        groups, str(target), shard_size_bytes=shard_bytes, write_manifest=False,
        quantization_dtype_map={quantization: True},
    )  # fmt: skip
    (target / "model.json").write_text(json.dumps(model_json))
    try:
        figures = proof.check(target, workdir, VARIANT_TOLERANCES[quantization])
    except ConversionError as exc:
        return {"ok": False, "error": str(exc), "parity": exc.parity}
    return {"ok": True, "parity": figures}


def handle(workdir: Path) -> None:
    """Run the job described by ``workdir/request.json``; write ``result.json``."""
    request = json.loads((workdir / "request.json").read_text())
    facts: dict = {}
    try:
        if request.get("action") == "verify-browsers":  # after a conversion, in the same job directory
            result = {"ok": True, **browsers.verify(workdir, request)}
        else:
            result = {"ok": True, **run(request, workdir, facts)}
    except ConversionError as exc:
        result = {"ok": False, "error": str(exc), "parity": exc.parity}
    except Exception as exc:
        traceback.print_exc()
        result = {"ok": False, "error": f"The converter failed on this model: {saved_model.first_line(exc)}"}
    (workdir / "result.json").write_text(json.dumps({**result, **facts}))


def warm_up() -> None:
    """Import everything a conversion needs, so forked jobs start warm."""
    import h5py  # noqa: F401
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
    import tensorflowjs.converters.converter  # noqa: F401
    import tensorflowjs.converters.tf_saved_model_conversion_v2  # noqa: F401
    import tf_keras  # noqa: F401

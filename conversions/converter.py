"""The converter that runs inside the sandbox, in a child forked by
conversions/zygote.py for each job.

It sees only its scratch directory: the unpacked upload and an output
directory. It imports no Django and holds no secrets. It reads its request
from ``request.json`` and writes ``result.json``; the parent process treats
everything it writes as untrusted.
"""

from __future__ import annotations

import json
import shutil
import traceback
from pathlib import Path

from conversions import keras3, keras_saved_model, layout, parity, tfjs_input
from conversions.errors import ConversionError
from conversions.formats import KERAS_H5, KERAS_SAVED_MODEL, KERAS_V3, SAVED_MODEL, TFJS

GLOBAL_POOLING = keras_saved_model.GLOBAL_POOLING

# Layers whose behaviour is Python code carried in the file. TF.js cannot run
# them, and running them here would execute the uploader's code.
CODE_LAYERS = {"Lambda", "TFOpLambda", "SlicingOpLambda"}

# Quantized weights trade accuracy for size; these bound how much.
VARIANT_TOLERANCES = {
    "float16": parity.Tolerance(atol=1e-3, rtol=1e-2),
    "uint16": parity.Tolerance(atol=1e-3, rtol=1e-2),
    "uint8": parity.Tolerance(atol=5e-2, rtol=5e-2),
}


def _iter_layers(config: dict):
    for layer in config.get("config", {}).get("layers", []) or []:
        yield layer
        if isinstance(layer.get("config"), dict) and "layers" in layer["config"]:
            yield from _iter_layers(layer)


def check_keras_config(model_config: dict) -> None:
    for layer in _iter_layers(model_config):
        class_name = layer.get("class_name", "")
        name = layer.get("config", {}).get("name", "?")
        if class_name in CODE_LAYERS:
            raise ConversionError(
                f"Layer '{name}' is a {class_name} layer: it holds Python code, which Modelport "
                "never runs and TF.js cannot execute. Replace it with built-in layers."
            )
        if layer.get("module") not in (None, "keras.layers", "keras") and "registered_name" in layer:
            if layer.get("registered_name") and layer["registered_name"] != class_name:
                raise ConversionError(
                    f"Layer '{name}' is a custom class {layer['registered_name']!r}; custom code is "
                    "never run and TF.js cannot load it."
                )


def _all_layers(item):
    """Every layer config anywhere in a model config: nested models and the
    layers wrapped by TimeDistributed/Bidirectional."""
    if isinstance(item, list):
        for element in item:
            yield from _all_layers(element)
    elif isinstance(item, dict):
        config = item.get("config")
        if isinstance(item.get("class_name"), str) and isinstance(config, dict) and "name" in config:
            yield item
        for key in ("config", "layers", "layer"):
            if isinstance(item.get(key), dict | list):
                yield from _all_layers(item[key])


def check_tfjs_support(model_config: dict) -> None:
    """A layer TF.js cannot run fails the version with its name and class,
    instead of an obscure load error."""
    for layer in _all_layers(model_config["config"].get("layers", [])):
        class_name, name = layer["class_name"], layer["config"]["name"]
        if class_name not in keras3.TFJS_LAYERS:
            raise ConversionError(
                f"Layer '{name}' ({class_name}) has no TF.js equivalent: TF.js 4.22 does not implement it."
            )
        if class_name == "GRU" and layer["config"].get("reset_after"):
            raise ConversionError(
                f"Layer '{name}' (GRU) uses reset_after=True (the Keras default), which TF.js 4.22 does not "
                "implement. Build the GRU with reset_after=False and retrain it."
            )


# tf-keras writes these for separable convolutions, but they do not apply to
# them; tfjs refuses the whole model when it sees them.
SEPARABLE_IGNORED = ("kernel_initializer", "kernel_regularizer", "kernel_constraint")


def fix_keras2_topology(output: Path) -> None:
    """Rewrite what tf-keras writes but TF.js 4.22 refuses, in model.json."""
    path = output / "model.json"
    document = json.loads(path.read_text())
    topology = document["modelTopology"]
    for layer in _all_layers(topology.get("model_config", topology)["config"].get("layers", [])):
        if layer["class_name"] in ("SeparableConv1D", "SeparableConv2D"):
            for key in SEPARABLE_IGNORED:
                layer["config"].pop(key, None)
    path.write_text(json.dumps(document))


def read_h5_config(source: Path) -> tuple[str, dict]:
    import h5py

    with h5py.File(source, "r") as h5:
        if "model_config" not in h5.attrs:
            raise ConversionError(
                "The HDF5 file holds weights only, without the model's architecture. "
                "Save the whole model with model.save('model.h5')."
            )
        version = h5.attrs.get("keras_version", b"")
        version = version.decode() if isinstance(version, bytes) else str(version)
        raw_config = h5.attrs["model_config"]
    return version, json.loads(raw_config.decode() if isinstance(raw_config, bytes) else raw_config)


def convert_keras_h5(source: Path, output: Path, shard_bytes: int) -> tuple[dict, parity.Proof]:
    """Keras 2 .h5 → layers model. Every class in the config is checked to be
    a built-in tf-keras class before tf-keras builds the model (for the
    parity reference): nothing from the file is ever executed."""
    version, model_config = read_h5_config(source)
    if version.startswith("3"):
        return convert_keras3(source, output, shard_bytes)
    keras_saved_model.check_model_classes(model_config)
    check_tfjs_support(model_config)
    # The reference is the model as uploaded (loaded once, cached); TF.js
    # gets a copy whose keepdims pooling it can run.
    proof = parity.keras2_proof(source)
    source = adapt_keepdims_pooling(source, model_config)

    from tensorflowjs.converters import converter

    converter.dispatch_keras_h5_to_tfjs_layers_model_conversion(
        str(source), output_dir=str(output), weight_shard_size_bytes=shard_bytes
    )
    fix_keras2_topology(output)
    return {"output_format": "layers-model"}, proof


def convert_keras3(source: Path, output: Path, shard_bytes: int) -> tuple[dict, parity.Proof]:
    """Keras 3 (.keras, or .h5 written by Keras 3) → layers model that TF.js
    4.22 loads. keras3.convert_keras3 refuses anything but built-in layers
    TF.js supports before Keras is allowed to build the parity reference."""
    keras3.convert_keras3(source, output, shard_bytes)
    return {"output_format": "layers-model"}, parity.keras3_proof(source)


def adapt_keepdims_pooling(source: Path, model_config: dict) -> Path:
    """TF.js has no ``keepdims`` on global pooling (MobileNet's head): write
    a copy of the .h5 whose config has pooling + Reshape instead (same
    weights, same layer names for everything else)."""
    import h5py

    layers = model_config["config"].get("layers", [])
    if not any(layer["class_name"] in GLOBAL_POOLING and layer["config"].get("keepdims") for layer in layers):
        return source
    reference = parity.load_keras2(source)
    rewritten = []
    for layer in layers:
        if layer["class_name"] in GLOBAL_POOLING and layer["config"].get("keepdims"):
            input_shape = list(reference.get_layer(layer["config"]["name"]).input_shape)
            rewritten += keras_saved_model.keepdims_pooling_layers(layer, input_shape)
        else:
            rewritten.append(layer)
    model_config["config"]["layers"] = rewritten
    target = source.parent / f"{source.stem}-tfjs.h5"
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as h5:
        h5.attrs["model_config"] = json.dumps(model_config).encode()
    return target


def convert_saved_model(source: Path, output: Path, shard_bytes: int, signature: str) -> dict:
    import tensorflow as tf
    from tensorflowjs.converters import tf_saved_model_conversion_v2 as saved_model_conversion

    try:
        loaded = tf.saved_model.load(str(source))
    except Exception as exc:  # the file is untrusted: any failure is the file's
        raise ConversionError(f"TensorFlow could not load the SavedModel: {_first_line(exc)}") from None
    signatures = sorted(getattr(loaded, "signatures", {}).keys())
    if signature not in signatures:
        available = ", ".join(signatures) or "none"
        raise ConversionError(
            f"The SavedModel has no signature named '{signature}' (available: {available}). "
            "Export it with a serving signature, e.g. tf.saved_model.save(module, path, signatures=...)."
        )
    del loaded
    try:
        saved_model_conversion.convert_tf_saved_model(
            str(source), str(output), signature_def=signature, weight_shard_size_bytes=shard_bytes
        )
    except ValueError as exc:
        raise ConversionError(f"The SavedModel cannot be converted to TF.js: {_first_line(exc)}") from None
    if not (output / "model.json").is_file():
        raise ConversionError("The SavedModel could not be frozen into a TF.js graph model.")
    return {"output_format": "graph-model"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else type(exc).__name__


def run(request: dict, workdir: Path) -> dict:
    source = Path(request["source"])
    output = Path(request["output"])
    input_format = request["format"]
    shard_bytes = int(request["shard_bytes"])
    tolerance = parity.Tolerance(float(request.get("atol", 1e-4)), float(request.get("rtol", 1e-3)))
    signature = request.get("signature") or "serving_default"
    if input_format == KERAS_H5:
        result, proof = convert_keras_h5(source, output, shard_bytes)
    elif input_format == KERAS_SAVED_MODEL and keras_saved_model.is_legacy_keras_saved_model(source):
        try:
            h5_path = keras_saved_model.convert_legacy_keras_saved_model(source, output, shard_bytes)
        except keras_saved_model.NoLayersTopology:
            result = convert_saved_model(source, output, shard_bytes, signature)
            proof = parity.graph_proof(source, signature, json.loads((output / "model.json").read_text()))
        else:
            fix_keras2_topology(output)
            result, proof = {"output_format": "layers-model"}, parity.keras2_proof(h5_path)
    elif input_format in (SAVED_MODEL, KERAS_SAVED_MODEL):
        result = convert_saved_model(source, output, shard_bytes, signature)
        proof = parity.graph_proof(source, signature, json.loads((output / "model.json").read_text()))
    elif input_format == KERAS_V3:
        result, proof = convert_keras3(source, output, shard_bytes)
    elif input_format == TFJS:
        result = tfjs_input.normalise(source, output, shard_bytes)
        proof = None
    else:
        raise ConversionError(f"Unknown input format {input_format!r}.")
    layout.regroup(output, shard_bytes)
    if input_format == TFJS:
        if result["output_format"] == "graph-model":
            return finish(result, tfjs_input.graph_self_check(output, workdir), [], request, no_reference=True)
        proof = tfjs_input.layers_proof(output)
    figures = proof.check(output, workdir, tolerance)
    result["variants"] = {
        quantization: make_variant(output, workdir, quantization, shard_bytes, proof)
        for quantization in request.get("variants", [])
    }
    return finish(result, figures, proof.layers, request)


def finish(result: dict, figures: dict, layers: list[dict], request: dict, no_reference: bool = False) -> dict:
    result["parity"] = figures
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
    try:
        result = {"ok": True, **run(request, workdir)}
    except ConversionError as exc:
        result = {"ok": False, "error": str(exc), "parity": exc.parity}
    except Exception as exc:
        traceback.print_exc()
        result = {"ok": False, "error": f"The converter failed on this model: {_first_line(exc)}"}
    (workdir / "result.json").write_text(json.dumps(result))


def warm_up() -> None:
    """Import everything a conversion needs, so forked jobs start warm."""
    import h5py  # noqa: F401
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
    import tensorflowjs.converters.converter  # noqa: F401
    import tensorflowjs.converters.tf_saved_model_conversion_v2  # noqa: F401
    import tf_keras  # noqa: F401

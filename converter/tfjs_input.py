"""Already-converted TF.js models (model.json + weight files, zipped or
tarred): validated, re-laid out like any conversion, and proven.

Layers models are proven against TensorFlow: tf-keras rebuilds the model
from the TF.js topology (only after every class in it was checked to be a
built-in layer TF.js supports) and the weights Modelport itself wrote.
Graph models have no TensorFlow original to compare with: they are run in
TF.js on deterministic inputs, which must give finite outputs.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import numpy as np

from converter import modeljson, parity
from converter.errors import ConversionError
from converter.formats import GRAPH_MODEL, LAYERS_MODEL
from converter.keras2 import check_model_classes, check_tfjs_support


def read_model_json(source: Path) -> dict:
    path = source / "model.json"
    if path.stat().st_size > modeljson.MAX_MODEL_JSON_BYTES:
        raise ConversionError("model.json is larger than 64 MiB.")
    document = modeljson.parse(path.read_bytes(), flat=False)
    for group in document["weightsManifest"]:
        sizes = []
        for name in group["paths"]:
            shard = source / name
            if not shard.is_file() or shard.is_symlink():
                raise ConversionError(f"The weight file {name!r} named in model.json is missing from the archive.")
            sizes.append(shard.stat().st_size)
        modeljson.check_group_bytes(group, sum(sizes))
    return document


def model_files(source: Path) -> set[str]:
    """The top-level file names that belong to the model: model.json and the
    weight files it names (TF.js' own saves write ``./model.weights.bin``)."""
    names = {"model.json"}
    for group in read_model_json(source)["weightsManifest"]:
        names.update(PurePosixPath(path).as_posix() for path in group["paths"])
    return names


def output_format(document: dict) -> str:
    return GRAPH_MODEL if modeljson.is_graph_model(document) else LAYERS_MODEL


def normalise(source: Path, output: Path, shard_bytes: int) -> dict:
    """Rewrite the weights with Modelport's sharding; keep everything else."""
    from tensorflowjs import read_weights, write_weights

    document = read_model_json(source)
    try:
        entries = read_weights.read_weights(document["weightsManifest"], str(source), flatten=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConversionError(f"The weight files do not match model.json: {str(exc)[:300]}") from None
    output.mkdir(parents=True)
    document["weightsManifest"] = write_weights.write_weights(
        [entries], str(output), shard_size_bytes=shard_bytes, write_manifest=False
    )
    (output / "model.json").write_text(json.dumps(document))
    return {"output_format": output_format(document)}


def layers_proof(output: Path) -> parity.Proof:
    topology = json.loads((output / "model.json").read_text())["modelTopology"]
    model_config = topology.get("model_config", topology)
    check_model_classes(model_config)
    check_tfjs_support(model_config)
    from tensorflowjs.converters import keras_tfjs_loader

    try:
        model = keras_tfjs_loader.load_keras_model(str(output / "model.json"))
    except Exception as exc:  # untrusted topology: any failure is the file's
        raise ConversionError(f"TensorFlow could not rebuild the TF.js model to check it: {str(exc)[:300]}") from None
    return parity.keras_model_proof(model, output_shape=parity.keras2_output_shape)


def graph_self_check(output: Path, workdir: Path) -> dict:
    """No TensorFlow original: run it in TF.js and require finite outputs."""
    signature = json.loads((output / "model.json").read_text()).get("signature") or {}
    inputs_spec = signature.get("inputs") or {}
    if not inputs_spec:
        raise ConversionError("The TF.js graph model has no signature, so Modelport cannot tell what inputs it takes.")
    keys = sorted(inputs_spec)
    specs = [
        parity.InputSpec(
            key,
            tuple(
                None if int(d.get("size", -1)) < 0 else int(d["size"]) for d in inputs_spec[key]["tensorShape"]["dim"]
            ),
            {"DT_INT32": "int32", "DT_BOOL": "bool"}.get(inputs_spec[key].get("dtype"), "float32"),
        )
        for key in keys
    ]
    inputs = parity.make_inputs(specs)
    names = [inputs_spec[key]["name"] for key in keys]
    actual = parity.run_tfjs(output, "graph", inputs, workdir, names)
    if not all(np.all(np.isfinite(out)) for out in actual):
        raise ConversionError("The TF.js graph model produces non-finite outputs on ordinary inputs.")
    return {
        "reference": "none",
        "passed": True,
        "inputs": [
            {"name": s.name, "shape": list(a.shape), "dtype": str(a.dtype)} for s, a in zip(specs, inputs, strict=True)
        ],
    }

"""Which Keras 3 built-in layers and activations reach TF.js, and how.

For every class in ``keras.layers`` and every function in
``keras.activations``, build the smallest model that uses it, save it as a
.keras file and put it through Modelport's converter as an upload would go
(layers route, else graph route), then run the result in TF.js (Node) and
compare with Keras. A row says "layers" or "graph" only when that parity
check passed; otherwise it says "refused" with the converter's words.

    python bench/keras_coverage.py              # print the Markdown table
    python bench/keras_coverage.py --readme     # rewrite README.md's table
    python bench/keras_coverage.py --json FILE  # also write the rows as JSON

Runs outside the sandbox: the probe models are built here, not uploaded.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

README = PROJECT_DIR / "README.md"
BEGIN, END = "<!-- keras-coverage:begin -->", "<!-- keras-coverage:end -->"

# Values for constructor arguments that have no default.
REQUIRED = {
    "units": 3, "filters": 4, "kernel_size": 2, "rate": 0.2, "stddev": 0.1, "target_shape": (8,), "dims": (2, 1),
    "n": 2, "num_heads": 2, "key_dim": 2, "num_query_heads": 2, "num_key_value_heads": 1, "head_dim": 2,
    "output_dim": 3, "input_dim": 12, "axes": -1, "height": 2, "width": 2, "factor": 0.2, "num_tokens": 4,
    "equation": "ab,bc->ac", "output_shape": 3, "groups": 2, "num_bins": 4, "max_tokens": 8, "value_range": (0, 1),
    "scale": 0.5, "max_value": 6.0, "num_boxes": 2, "sequence_length": 4, "frame_length": 4, "output_size": 2,
    "size": 2, "height_factor": 0.2, "width_factor": 0.2, "bins": 4,
}  # fmt: skip
SHAPES = [(8,), (6, 4), (6, 6, 3), (4, 4, 4, 2)]  # rank 2..5 with the batch
INTEGER_INPUTS = {"Embedding", "IntegerLookup", "CategoryEncoding", "ReversibleEmbedding", "Hashing"}
QUERY_VALUE = {"MultiHeadAttention", "GroupQueryAttention"}
MULTI_INPUT = set("Add Subtract Multiply Average Maximum Minimum Concatenate Dot Attention AdditiveAttention".split())
MULTI_INPUT |= {"HashedCrossing"}
NOT_PROBED = {
    "Layer": "the base class",
    "Wrapper": "the base class of wrappers",
    "InputLayer": "every model has one",
    "Lambda": "holds Python code: refused without running it",
    "TFSMLayer": "wraps a SavedModel on the server's disk: refused",
    "JaxLayer": "holds JAX code: refused",
    "FlaxLayer": "holds Flax code: refused",
    "TorchModuleWrapper": "holds PyTorch code: refused",
    "Pipeline": "a preprocessing pipeline, not part of a saved model's graph",
    "RNN": "takes a cell object (probed through SimpleRNN, LSTM, GRU)",
    "StackedRNNCells": "takes cell objects (probed through SimpleRNN, LSTM, GRU)",
    "SimpleRNNCell": "a cell, used inside RNN",
    "LSTMCell": "a cell, used inside RNN",
    "GRUCell": "a cell, used inside RNN",
}


def layer_classes() -> dict[str, type]:
    import keras

    found: dict[type, str] = {}
    for name in sorted(dir(keras.layers)):
        cls = getattr(keras.layers, name)
        if inspect.isclass(cls) and issubclass(cls, keras.layers.Layer):
            found.setdefault(cls, name)  # the first of its aliases (AvgPool2D is AveragePooling2D)
    return {name: cls for cls, name in found.items()}


def activations() -> list[str]:
    import keras

    skip = {"get", "serialize", "deserialize"}
    return sorted(n for n in dir(keras.activations) if not n.startswith("_") and n not in skip)


def construct(name: str, cls: type):
    import keras

    if name == "Bidirectional":
        return keras.layers.Bidirectional(keras.layers.LSTM(3))
    if name == "TimeDistributed":
        return keras.layers.TimeDistributed(keras.layers.Dense(3))
    if name == "SpectralNormalization":
        return keras.layers.SpectralNormalization(keras.layers.Dense(3))
    if name in ("StringLookup", "IntegerLookup"):
        return cls(vocabulary=["a", "b"] if name == "StringLookup" else [1, 2])
    if name == "Discretization":
        return cls(bin_boundaries=[-0.5, 0.0, 0.5])
    if name == "Hashing":
        return cls(num_bins=4)
    if name == "TextVectorization":
        return cls(max_tokens=8, vocabulary=["a", "b"])
    if name == "EinsumDense":
        return cls("ab,bc->ac", output_shape=3)
    if name == "Activation":
        return cls("relu")
    if name == "CategoryEncoding":
        return cls(num_tokens=4, output_mode="multi_hot")
    if name == "RandomPosterization":
        return cls(factor=4)
    if name == "GroupNormalization":
        return cls(groups=2)
    kwargs = {}
    for parameter in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.default is inspect.Parameter.empty:
            kwargs[parameter.name] = REQUIRED.get(parameter.name, 2)
    return cls(**kwargs)


def probe_model(name: str, make):
    """The smallest functional model that calls a layer from `make()` and
    predicts: the first input rank (and arity) it accepts, with integer inputs
    for lookups. A fresh layer for each try: a failed call leaves it built."""
    import keras
    import numpy as np

    last = None
    for shape in SHAPES:
        for arity in (2,) if name in MULTI_INPUT else (1,):
            try:
                layer = make()
                dtype = "int32" if type(layer).__name__ in INTEGER_INPUTS else "float32"
                inputs = [keras.Input(shape, dtype=dtype) for _ in range(arity)]
                if type(layer).__name__ in QUERY_VALUE:
                    output = layer(inputs[0], inputs[0])
                else:
                    output = layer(inputs[0] if arity == 1 else inputs)
                if isinstance(output, list | tuple):
                    output = output[0]
                model = keras.Model(inputs, output)
                data = [np.ones((2, *shape), dtype) for _ in range(arity)]
                model.predict(data[0] if arity == 1 else data, verbose=0)
                return model
            except Exception as exc:  # noqa: BLE001 - trying shapes until one fits
                last = exc
    raise ValueError(f"no probe input fits: {str(last).splitlines()[0][:200] if last else ''}")


def convert_and_check(model, workdir: Path) -> tuple[str, str]:
    """(route, why): what Modelport's converter makes of `model`, proven in TF.js."""
    from converter import keras3, parity, run
    from converter.errors import ConversionError, NotExpressible

    source = workdir / "probe.keras"
    model.save(source)
    output = workdir / "output"
    why = ""
    try:
        keras3.normalise(source)
    except NotExpressible as exc:
        why = str(exc)
    except ConversionError as exc:
        return "refused", str(exc)
    try:
        result, proof = run.convert_keras("keras-v3", source, output, workdir, 4 * 1024**2)
        proof.check(output, workdir, parity.Tolerance())
    except ConversionError as exc:
        return "refused", str(exc)
    except Exception as exc:  # noqa: BLE001 - a probe the converter chokes on is a finding, not a crash
        return "refused", f"the converter failed: {str(exc).splitlines()[0][:200]}"
    finally:
        parity._loaded.clear()  # one probe's model is not the next one's
    route = "layers" if result["output_format"] == "layers-model" else "graph"
    return route, why


def rows() -> list[dict]:
    import keras

    found = []
    for name, cls in layer_classes().items():
        started = time.monotonic()
        if name in NOT_PROBED:
            route, why = ("refused" if "refused" in NOT_PROBED[name] else "—"), NOT_PROBED[name]
        else:
            with tempfile.TemporaryDirectory() as directory:
                try:
                    model = probe_model(name, lambda name=name, cls=cls: construct(name, cls))
                except Exception as exc:  # noqa: BLE001
                    route, why = "not probed", f"no small model could be built here ({str(exc)[:160]})"
                else:
                    route, why = convert_and_check(model, Path(directory))
        found.append({"kind": "layer", "name": name, "route": route, "why": why})
        keras.backend.clear_session()
        print(f"{name}: {route} ({time.monotonic() - started:.1f} s)", file=sys.stderr)
    for name in activations():
        with tempfile.TemporaryDirectory() as directory:
            inputs = keras.Input((6,))
            hidden = keras.layers.Dense(6, name="dense")(inputs)
            model = keras.Model(inputs, keras.layers.Activation(name, name="act")(hidden))
            route, why = convert_and_check(model, Path(directory))
        found.append({"kind": "activation", "name": name, "route": route, "why": why})
        keras.backend.clear_session()
        print(f"activation {name}: {route}", file=sys.stderr)
    return found


def _cell(text: str) -> str:
    text = re.sub(r" \(in function '[^']*'\)", "", text)  # traced names change from run to run
    text = re.sub(r"(Layer \S+?)_\d+\b", r"\1", text)
    text = re.sub(r"\s+", " ", text).replace("|", "\\|").strip()
    return text[:300] + ("…" if len(text) > 300 else "")


def table(found: list[dict]) -> str:
    import keras

    counts = {route: sum(1 for row in found if row["route"] == route) for route in ("layers", "graph", "refused")}
    lines = [
        f"Generated by `make coverage` (`bench/keras_coverage.py`) with Keras {keras.__version__}: each row is a "
        "small model converted by Modelport and run in TF.js against Keras. "
        f"{counts['layers']} convert to layers models, {counts['graph']} to graph models, "
        f"{counts['refused']} are refused.",
        "",
        "| Keras | Kind | TF.js | Why |",
        "|---|---|---|---|",
    ]
    for row in found:
        lines.append(f"| `{row['name']}` | {row['kind']} | {row['route']} | {_cell(row['why'])} |")
    return "\n".join(lines)


def write_readme(text: str) -> None:
    readme = README.read_text()
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md has no {BEGIN} … {END} block")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", action="store_true", help="rewrite the table in README.md")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    found = rows()
    text = table(found)
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    if args.readme:
        write_readme(text)
    print(text)


if __name__ == "__main__":
    main()

"""TensorFlow SavedModels: checked op by op before TensorFlow loads them,
then converted to TF.js graph models.

``tf.saved_model.load`` runs the upload's graph code as it loads (resource
initializers, for one), before any later check could look at it. So the
SavedModel protocol buffer is parsed here first, and every op in the graph
*and in every function of its library* must be one TF.js implements or one
of the few the variable and checkpoint machinery needs; ops that touch
files, print, run Python or read datasets are refused by name. Asset paths
must stay inside ``assets/``. Only then does TensorFlow see the directory.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path, PurePosixPath

from converter.errors import ConversionError
from converter.formats import GRAPH_MODEL

MAX_PROTO_BYTES = 512 * 1024**2
# What variables, checkpoints and function calls need besides TF.js' ops.
# SaveV2/MergeV2Checkpoints only run when a model is saved (never here); if
# an initializer called them, they would write inside the sandbox only.
INFRASTRUCTURE = frozenset(
    "VarHandleOp ReadVariableOp AssignVariableOp AssignAddVariableOp AssignSubVariableOp VarIsInitializedOp "
    "DestroyResourceOp DisableCopyOnRead RestoreV2 SaveV2 MergeV2Checkpoints ShardedFilename StringJoin "
    "StaticRegexFullMatch PartitionedCall StatefulPartitionedCall Case StatelessCase NoOp Identity IdentityN "
    "Const Placeholder PlaceholderWithDefault StopGradient PreventGradient CheckNumerics Assert".split()
)
# Refused even where TF.js has a namesake: they read or write files, print,
# run Python, or read data sets.
IO_OPS = frozenset(
    "ReadFile WriteFile MatchingFiles Print PrintV2 PyFunc PyFuncStateless EagerPyFunc ImmutableConst "
    "InitializeTableFromTextFile InitializeTableFromTextFileV2 SimpleMLLoadModelFromPathWithHandle "
    "Save SaveSlices Restore RestoreSlice WholeFileReader WholeFileReaderV2 TFRecordReader TFRecordReaderV2 "
    "CreateSummaryFileWriter CreateSummaryDbWriter DebugIdentity DebugIdentityV2 DebugIdentityV3".split()
)
IO_MARKERS = ("Dataset", "Iterator", "Summary", "Reader", "File", "Py")


@functools.cache
def tfjs_ops() -> frozenset[str]:
    import tensorflowjs

    op_list = Path(tensorflowjs.__file__).parent / "op_list"
    names = set()
    for path in op_list.glob("*.json"):
        names |= {op["tfOpName"] for op in json.loads(path.read_text())}
    return frozenset(names)


def parse(directory: Path):
    """The SavedModel protocol buffer of ``directory``, parsed without TensorFlow loading it."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    for other in ("saved_model.pbtxt", "saved_model.cpb"):
        if (directory / other).exists():
            raise ConversionError(f"The SavedModel directory holds {other} besides saved_model.pb; it was refused.")
    path = directory / "saved_model.pb"
    if path.stat().st_size > MAX_PROTO_BYTES:
        raise ConversionError(f"saved_model.pb is larger than {MAX_PROTO_BYTES // 1024**2} MiB.")
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(path.read_bytes())
    except (DecodeError, RuntimeError, ValueError):
        raise ConversionError("saved_model.pb is not a SavedModel protocol buffer.") from None
    if not proto.meta_graphs:
        raise ConversionError("saved_model.pb holds no graph.")
    return proto


def check_ops(directory: Path) -> None:
    """Refuse a SavedModel whose graph or function library holds an op that
    is not allowed, or whose assets point outside ``assets/``."""
    allowed = tfjs_ops() | INFRASTRUCTURE
    for meta_graph in parse(directory).meta_graphs:
        graph = meta_graph.graph_def
        functions = {function.signature.name for function in graph.library.function}
        bodies = [("the graph", graph.node)] + [
            (f"function '{function.signature.name}'", function.node_def) for function in graph.library.function
        ]
        for where, nodes in bodies:
            for node in nodes:
                _check_op(node.op, where, allowed, functions)
        for asset in meta_graph.asset_file_def:
            _check_asset(asset.filename)


def _check_op(op: str, where: str, allowed: frozenset[str], functions: set[str]) -> None:
    if op in functions:
        return
    if op in IO_OPS or (op not in allowed and any(marker in op for marker in IO_MARKERS)):
        raise ConversionError(
            f"The SavedModel uses the op '{op}' (in {where}), which reads or writes files, prints or runs "
            "Python; Modelport refuses such SavedModels before TensorFlow loads them."
        )
    if op not in allowed:
        raise ConversionError(
            f"The SavedModel uses the op '{op}' (in {where}), which TF.js does not implement; Modelport "
            "refuses such SavedModels before TensorFlow loads them."
        )


def _check_asset(filename: str) -> None:
    path = PurePosixPath(filename)
    if not filename or path.is_absolute() or ".." in path.parts or "\\" in filename:
        raise ConversionError(f"The SavedModel's asset {filename!r} points outside its assets/ directory.")


def load(directory: Path):
    """``tf.saved_model.load``, only after :func:`check_ops` passed."""
    import tensorflow as tf

    check_ops(directory)
    try:
        return tf.saved_model.load(str(directory))
    except Exception as exc:  # the file is untrusted: any failure is the file's
        raise ConversionError(f"TensorFlow could not load the SavedModel: {first_line(exc)}") from None


def convert(source: Path, output: Path, shard_bytes: int, signature: str) -> dict:
    from tensorflowjs.converters import tf_saved_model_conversion_v2 as saved_model_conversion

    loaded = load(source)
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
            str(source), str(output), signature_def=signature, weight_shard_size_bytes=shard_bytes, control_flow_v2=True
        )
    except ValueError as exc:
        raise ConversionError(f"The SavedModel cannot be converted to TF.js: {first_line(exc)}") from None
    if not (output / "model.json").is_file():
        raise ConversionError("The SavedModel could not be frozen into a TF.js graph model.")
    return {"output_format": GRAPH_MODEL}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else type(exc).__name__

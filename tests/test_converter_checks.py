"""Checks the converter makes on a model's config before anything runs."""

from __future__ import annotations

import pytest

from converter.errors import ConversionError, NotExpressible
from converter.keras2 import check_tfjs_support


def config(*layers: dict) -> dict:
    return {"class_name": "Functional", "config": {"name": "m", "layers": list(layers)}}


def layer(class_name: str, name: str, **extra) -> dict:
    return {"class_name": class_name, "config": {"name": name, **extra}}


def test_supported_layers_pass():
    check_tfjs_support(config(layer("InputLayer", "in"), layer("Dense", "d"), layer("GRU", "g", reset_after=False)))


def test_layer_without_tfjs_equivalent_is_named_with_its_class():
    with pytest.raises(ConversionError) as failure:
        check_tfjs_support(config(layer("Dense", "d"), layer("MultiHeadAttention", "attention")))
    assert str(failure.value) == (
        "Layer 'attention' (MultiHeadAttention) has no TF.js equivalent: TF.js 4.22 does not implement it."
    )


def test_unsupported_layer_inside_a_wrapper_or_nested_model_is_found():
    wrapped = {"class_name": "TimeDistributed", "config": {"name": "td", "layer": layer("UnitNormalization", "unit")}}
    with pytest.raises(ConversionError, match=r"'unit' \(UnitNormalization\)"):
        check_tfjs_support(config(wrapped))
    nested = {"class_name": "Sequential", "config": {"name": "inner", "layers": [layer("Discretization", "bins")]}}
    with pytest.raises(ConversionError, match=r"'bins' \(Discretization\)"):
        check_tfjs_support(config(nested))


def test_gru_with_reset_after_cannot_be_a_layers_model():
    with pytest.raises(ConversionError) as failure:
        check_tfjs_support(config(layer("GRU", "gru", reset_after=True)))
    assert str(failure.value) == (
        "Layer 'gru' (GRU) uses reset_after=True (the Keras default), which TF.js' GRU layer does not implement."
    )
    assert isinstance(failure.value, NotExpressible)  # a graph model can still be made


# --- Serialized code anywhere in a config ---------------------------------------------


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            {"class_name": "DropoutWrapper", "config": {"name": "w", "cell": {}}},
            "Layer 'cell' uses a DropoutWrapper (an RNN cell wrapper)",
        ),
        ({"residual_fn": ["4wEAAAAA", None, None], "residual_fn_type": "lambda"}, "('residual_fn')"),
        ({"dropout_state_filter_visitor": "4wEA"}, "('dropout_state_filter_visitor')"),
        ({"module": "os", "class_name": "system", "config": {}}, "refers to the Python module 'os'"),
        ({"module": "keras.src.saving.serialization_lib", "class_name": "x", "config": {}}, "Keras internals"),
        ({"class_name": "__lambda__", "config": {"code": "4wEA"}}, "holds a serialized Python function"),
    ],
)
def test_serialized_code_is_refused_wherever_it_sits(obj, message):
    from converter.keras_config import check_no_code

    rnn = layer("RNN", "rnn", cell={"class_name": "SimpleRNNCell", "config": {"name": "cell", "extra": obj}})
    with pytest.raises(ConversionError) as failure:
        check_no_code(config(layer("InputLayer", "in"), rnn))
    assert message in str(failure.value)
    assert "'rnn'" in str(failure.value) or "'cell'" in str(failure.value) or "'w'" in str(failure.value)


def test_keras_activations_by_function_object_are_allowed():
    from converter.keras_config import check_no_code

    relu = {"module": "keras.activations", "class_name": "function", "config": "relu", "registered_name": "function"}
    check_no_code(config(layer("Dense", "d", activation=relu)))


# --- HDF5 files must be self-contained -------------------------------------------------


def make_h5(path, build):
    import h5py

    with h5py.File(path, "w") as h5:
        h5.create_dataset("model_weights/dense/kernel", data=[1.0, 2.0])
        build(h5)
    return path


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda h5: h5.__setitem__("stolen", __import__("h5py").ExternalLink("/etc/passwd", "/")), "links '/stolen'"),
        (lambda h5: h5.__setitem__("alias", __import__("h5py").SoftLink("/model_weights")), "soft link at '/alias'"),
        (
            lambda h5: h5.create_dataset("ext", (4,), dtype="u1", external=[("/etc/hostname", 0, 4)]),
            "external dataset '/ext'",
        ),
    ],
)
def test_h5_that_reads_outside_itself_is_refused(tmp_path, build, message):
    from converter.hdf5 import check_self_contained

    path = make_h5(tmp_path / "m.h5", build)
    with pytest.raises(ConversionError, match=message):
        check_self_contained(path)


def test_h5_virtual_dataset_is_refused(tmp_path):
    import h5py

    from converter.hdf5 import check_self_contained

    source = make_h5(tmp_path / "other.h5", lambda h5: None)

    def add_virtual(h5):
        layout = h5py.VirtualLayout(shape=(2,), dtype="f8")
        layout[:] = h5py.VirtualSource(str(source), "model_weights/dense/kernel", shape=(2,))
        h5.create_virtual_dataset("virtual", layout)

    with pytest.raises(ConversionError, match="virtual dataset '/virtual'"):
        check_self_contained(make_h5(tmp_path / "m.h5", add_virtual))
    check_self_contained(source)  # an ordinary file passes


# --- SavedModel op allowlist -----------------------------------------------------------


def saved_model_with(tmp_path, ops: list[str], asset: str | None = None):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    graph = proto.meta_graphs.add().graph_def
    graph.node.add(name="x", op="Placeholder")
    function = graph.library.function.add()
    function.signature.name = "__inference_init_7"
    for index, op in enumerate(ops):
        function.node_def.add(name=f"n{index}", op=op)
    graph.node.add(name="call", op="__inference_init_7")  # a direct call of a library function
    if asset:
        proto.meta_graphs[0].asset_file_def.add(filename=asset)
    (tmp_path / "saved_model.pb").write_bytes(proto.SerializeToString())
    return tmp_path


@pytest.mark.parametrize("op", ["ReadFile", "WriteFile", "MatchingFiles", "PrintV2", "EagerPyFunc", "TFRecordDataset"])
def test_saved_model_with_io_ops_in_its_function_library_is_refused(tmp_path, op):
    from converter.saved_model import check_ops

    with pytest.raises(ConversionError) as failure:
        check_ops(saved_model_with(tmp_path, ["Const", op]))
    assert str(failure.value) == (
        f"The SavedModel uses the op '{op}' (in function '__inference_init_7'), which reads or writes files, "
        "prints or runs Python; Modelport refuses such SavedModels before TensorFlow loads them."
    )


def test_saved_model_ops_tfjs_lacks_are_refused_and_ordinary_ones_pass(tmp_path):
    from converter.saved_model import check_ops

    check_ops(saved_model_with(tmp_path, ["Const", "MatMul", "VarHandleOp", "ReadVariableOp", "RestoreV2"]))
    with pytest.raises(ConversionError, match="uses the op 'Svd' .* which TF.js does not implement"):
        check_ops(saved_model_with(tmp_path, ["Svd"]))


@pytest.mark.parametrize("asset", ["/etc/passwd", "../../secret", "vocab/../../x"])
def test_saved_model_assets_outside_assets_are_refused(tmp_path, asset):
    from converter.saved_model import check_ops

    with pytest.raises(ConversionError, match="points outside its assets/ directory"):
        check_ops(saved_model_with(tmp_path, ["Const"], asset=asset))


def test_settings_a_builtin_layer_does_not_take_are_refused():
    from converter.keras2 import check_model_classes

    dense = layer("Dense", "head", units=2, activation="relu", side_channel="payload")
    with pytest.raises(ConversionError) as failure:
        check_model_classes(config(layer("InputLayer", "in", batch_input_shape=[None, 3]), dense))
    assert (
        str(failure.value)
        == "Layer 'head' (Dense) has settings Keras does not define for it ('side_channel'); it was refused."
    )
    check_model_classes(config(layer("InputLayer", "in", batch_input_shape=[None, 3]), layer("Dense", "head", units=2)))

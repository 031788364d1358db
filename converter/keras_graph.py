"""Keras models that TF.js layers cannot express, as TF.js graph models.

Only after the same class, key and code checks as the layers route (every
class built in, no serialized code anywhere), Keras builds the model here,
inside the sandbox. Its inference function is traced with a free batch
dimension and saved as a SavedModel whose signature uses the model's own
input and output names (so ``model.execute({image: x})`` works in TF.js),
which goes through the ordinary SavedModel route (op allowlist, then
tensorflowjs). The proof compares TF.js with the Keras model itself.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

from converter import parity, saved_model
from converter.errors import ConversionError

NAME = re.compile(r"[^A-Za-z0-9_.-]")


def _clean(name: str, fallback: str) -> str:
    name = NAME.sub("_", name.split(":")[0]) or fallback
    return name if name[0].isalpha() else f"{fallback}_{name}"


def _input_name(tensor) -> str:
    """The name of the Input layer a model input comes from (Keras 3 names the
    tensor of an unnamed keras.Input "keras_tensor_N", its layer "input_layer_N")."""
    history = getattr(tensor, "_keras_history", None)
    layer = getattr(history, "operation", None) or (history[0] if isinstance(history, tuple) and history else None)
    return getattr(layer, "name", None) or getattr(tensor, "name", "") or ""


def signature_names(model) -> tuple[list[str], list[str]]:
    inputs = [_clean(_input_name(t), f"input_{i}") for i, t in enumerate(model.inputs)]
    outputs = list(getattr(model, "output_names", None) or [])
    if len(outputs) != len(model.outputs):
        outputs = [f"output_{i}" for i in range(len(model.outputs))]
    outputs = [_clean(name, f"output_{i}") for i, name in enumerate(outputs)]
    if len(set(inputs)) != len(inputs):
        inputs = [f"input_{i}" for i in range(len(inputs))]
    if len(set(outputs)) != len(outputs):
        outputs = [f"output_{i}" for i in range(len(outputs))]
    return inputs, outputs


def export(model, directory: Path) -> tuple[list[str], list[str]]:
    """Write a SavedModel of ``model``'s inference; return its input and output names."""
    import tensorflow as tf

    input_names, output_names = signature_names(model)
    specs = [
        tf.TensorSpec([None, *list(tensor.shape)[1:]], tf.as_dtype(_dtype(tensor)), name=name)
        for tensor, name in zip(model.inputs, input_names, strict=True)
    ]

    def serve(*args):
        outputs = model(list(args) if len(args) > 1 else args[0], training=False)
        if isinstance(outputs, dict):
            outputs = list(outputs.values())
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        return {name: output for name, output in zip(output_names, outputs, strict=True)}

    unroll_recurrent_layers(model)
    module = tf.Module()
    module.model = model
    try:
        with tfjs_friendly_ops():  # saving traces again: keep it inside too
            concrete = tf.function(serve, input_signature=specs).get_concrete_function()
            tf.saved_model.save(module, str(directory), signatures={"serving_default": concrete})
    except (ValueError, TypeError, tf.errors.OpError) as exc:
        raise ConversionError(
            f"TensorFlow could not trace the model for a graph model: {saved_model.first_line(exc)}"
        ) from None
    return input_names, output_names


@contextlib.contextmanager
def tfjs_friendly_ops():
    """While tracing a Keras 3 model, write two activations in ops TF.js
    runs, as the same functions (the parity check holds them to the same
    tolerance): exact GELU with Erf, which TF.js has, instead of Erfc, which
    it lacks; hard sigmoid as a clip, which TensorFlow's optimizer does not
    fuse into convolutions as a "hard swish" that TF.js' CPU backend lacks;
    grouped convolutions without XLA."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import nn

    originals = {"gelu": nn.gelu, "hard_sigmoid": nn.hard_sigmoid}

    def gelu(x, approximate=True):
        if approximate:
            return originals["gelu"](x, approximate=True)
        x = tf.convert_to_tensor(x)
        return 0.5 * x * (1.0 + tf.math.erf(x * 0.7071067811865476))

    def hard_sigmoid(x):
        x = tf.convert_to_tensor(x)
        return tf.clip_by_value(x / tf.constant(6.0, x.dtype) + tf.constant(0.5, x.dtype), 0.0, 1.0)

    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        grouped = len(inputs.shape) == 4 and inputs.shape[-1] != kernel.shape[-2]
        if not grouped or data_format not in (None, "channels_last"):
            return originals["conv"](inputs, kernel, strides, padding, data_format, dilation_rate)
        return _grouped_conv2d(tf, inputs, kernel, strides, padding, dilation_rate)

    originals["conv"] = nn.conv
    nn.gelu, nn.hard_sigmoid, nn.conv = gelu, hard_sigmoid, conv
    try:
        yield
    finally:
        nn.gelu, nn.hard_sigmoid, nn.conv = originals["gelu"], originals["hard_sigmoid"], originals["conv"]


def _grouped_conv2d(tf, inputs, kernel, strides, padding, dilation_rate):
    """A grouped convolution without XLA (Keras compiles it with XLA on the
    CPU, which leaves a call TF.js cannot inline): depthwise when every group
    has one input channel (ConvNeXt), else one convolution per group."""
    strides = [strides] * 2 if isinstance(strides, int) else list(strides)
    dilations = [dilation_rate] * 2 if isinstance(dilation_rate, int) else list(dilation_rate)
    channels, group_in = inputs.shape[-1], kernel.shape[-2]
    groups = channels // group_in
    if group_in == 1:
        depthwise = tf.reshape(kernel, [kernel.shape[0], kernel.shape[1], channels, kernel.shape[-1] // channels])
        return tf.nn.depthwise_conv2d(inputs, depthwise, [1, *strides, 1], padding.upper(), dilations=dilations)
    parts = zip(tf.split(inputs, groups, axis=-1), tf.split(kernel, groups, axis=-1), strict=True)
    return tf.concat([tf.nn.conv2d(x, k, strides, padding.upper(), dilations=dilations) for x, k in parts], axis=-1)


def unroll_recurrent_layers(model) -> None:
    """Trace RNNs over a known number of steps unrolled: TF.js runs the
    straight-line graph, but not every while loop a frozen graph holds.
    Same weights, same arithmetic; the parity check proves it."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if hasattr(layer, "unroll") and hasattr(layer, "cell"):
            steps = _time_steps(layer)
            if isinstance(steps, int) and steps <= 512:
                layer.unroll = True
        if hasattr(layer, "_could_use_gpu_kernel"):
            # tf-keras decides at construction; its cuDNN branch (CudnnRNNV3) is no op for TF.js.
            layer._could_use_gpu_kernel = False


def _time_steps(layer):
    try:
        shape = layer.input.shape if hasattr(layer, "input") else None
    except (AttributeError, ValueError):
        shape = None
    if shape is None:
        build = getattr(layer, "_build_shapes_dict", None) or {}
        shape = next(iter(build.values()), None)
    return shape[1] if shape is not None and len(shape) > 2 else None


def _dtype(tensor) -> str:
    dtype = getattr(tensor.dtype, "name", tensor.dtype)
    return str(dtype)


def convert(model, output: Path, workdir: Path, shard_bytes: int, output_shape) -> tuple[dict, parity.Proof]:
    """Convert a built (checked) Keras model into a TF.js graph model in ``output``."""
    exported = workdir / "graph-savedmodel"
    input_names, output_names = export(model, exported)
    result = saved_model.convert(exported, output, shard_bytes, "serving_default")
    signature = json.loads((output / "model.json").read_text()).get("signature") or {}
    # tensorflowjs keys a signature's tensors "name" or, with several, "name:0".
    tfjs_inputs, tfjs_outputs = ({key.split(":")[0]: value for key, value in (signature.get(part) or {}).items()}
                                 for part in ("inputs", "outputs"))  # fmt: skip
    if not all(name in tfjs_inputs for name in input_names) or not all(n in tfjs_outputs for n in output_names):
        raise ConversionError("The graph model's signature lost the model's input or output names.")
    proof = parity.keras_model_proof(model, output_shape)
    proof.kind = "graph"
    proof.input_names = [tfjs_inputs[name]["name"] for name in input_names]
    proof.output_names = [tfjs_outputs[name]["name"] for name in output_names]
    return result, proof

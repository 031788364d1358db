"""One walker over Keras model configs, and the checks every Keras path
runs on them before anything builds a model.

A Keras config is JSON, but Keras turns parts of it back into Python when
it builds the model: Lambda layers, custom classes, cell wrappers whose
``residual_fn`` is marshalled bytecode, "function" objects that name any
module. Class allowlists alone are not enough (``ResidualWrapper`` is a
built-in class), so ``check_no_code`` refuses serialized code wherever it
sits, in every dialect (tf-keras .h5, Keras 3, TF.js topologies).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterator

from converter.errors import ConversionError, NotExpressible

# Layers whose behaviour is Python code carried in the file (or another
# framework's module). TF.js cannot run them; building them would run the
# uploader's code.
CODE_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"})
CODE_MESSAGE = "holds Python code; Modelport never runs code from an upload and TF.js cannot execute it."
# Keys under which tf-keras stores marshalled functions (Lambda's
# ``function``, cell wrappers' ``residual_fn`` / ``dropout_state_filter_visitor``).
FUNCTION_KEY = re.compile(r"(^|_)(fn|fn_type|fn_module|function|function_type|visitor|visitor_type)$")
# Serialized function objects (Keras 3 ``{"class_name": "function"}``,
# ``__lambda__``): only Keras' own activations, by name.
FUNCTION_CLASSES = frozenset({"function", "__lambda__", "__function__"})
ACTIVATION_MODULES = frozenset({"keras.activations", "keras.src.activations", "keras.src.activations.activations"})
ACTIVATION_NAMES = frozenset(
    "linear relu relu6 elu selu sigmoid hard_sigmoid tanh softmax softplus softsign mish swish silu gelu "
    "log_softmax exponential leaky_relu hard_silu hard_swish celu glu log_sigmoid sparse_plus "
    "sparsemax squareplus tanh_shrink threshold soft_shrink hard_shrink hard_tanh".split()
)


def layer_name(item: dict) -> str | None:
    config = item.get("config")
    if isinstance(item.get("class_name"), str) and isinstance(config, dict) and isinstance(config.get("name"), str):
        return config["name"]
    return None


def walk_objects(item, owner: str = "?", enclosing: str = "?") -> Iterator[tuple[dict, str, str]]:
    """Every JSON object anywhere in ``item``, with the name of the layer it
    belongs to (itself, or the nearest enclosing layer) and of the layer
    around that."""
    if isinstance(item, list):
        for element in item:
            yield from walk_objects(element, owner, enclosing)
    elif isinstance(item, dict):
        own = layer_name(item)
        if own is not None:
            owner, enclosing = own, owner
        yield item, owner, enclosing
        for value in item.values():
            yield from walk_objects(value, owner, enclosing)


LAYER_KEYS = ("config", "layers", "layer", "backward_layer", "cell", "cells")


def walk_layers(item) -> Iterator[dict]:
    """Every layer config anywhere in a model config: nested models, the
    layers inside TimeDistributed/Bidirectional, RNN cells."""
    if isinstance(item, list):
        for element in item:
            yield from walk_layers(element)
    elif isinstance(item, dict):
        if layer_name(item) is not None:
            yield item
        for key in LAYER_KEYS:
            if isinstance(item.get(key), dict | list):
                yield from walk_layers(item[key])


def check_no_code(model_config: dict) -> None:
    """Refuse any serialized Python function or code-bearing class, with the
    name of the layer that holds it."""
    for obj, owner, enclosing in walk_objects(model_config):
        class_name = obj.get("class_name")
        if isinstance(class_name, str):
            short = class_name.split(">")[-1]
            if short in CODE_LAYERS:
                raise ConversionError(f"Layer '{owner}' ({short}) {CODE_MESSAGE}")
            if short.endswith("Wrapper"):
                raise ConversionError(
                    f"Layer '{enclosing}' uses a {short} (an RNN cell wrapper), which can carry Python functions; "
                    "Modelport never runs code from an upload and TF.js has no such wrapper."
                )
            if short in FUNCTION_CLASSES and not _is_keras_activation(obj):
                raise ConversionError(
                    f"Layer '{owner}' holds a serialized Python function ({obj.get('module')}.{obj.get('config')}); "
                    "Modelport never runs code from an upload. Use built-in activations by name."
                )
        for key in obj:
            if isinstance(key, str) and FUNCTION_KEY.search(key) and obj[key] is not None:
                raise ConversionError(
                    f"Layer '{owner}' holds a serialized Python function ('{key}'); "
                    "Modelport never runs code from an upload and TF.js cannot execute it."
                )
        module = obj.get("module")
        if module is not None and not (isinstance(module, str) and (module == "keras" or module.startswith("keras."))):
            raise ConversionError(
                f"Layer '{owner}' refers to the Python module {str(module)[:100]!r}; only Keras' own classes "
                "can be converted, and Modelport never runs code from an upload."
            )
        if isinstance(module, str) and any(part in module.split(".") for part in ("saving", "utils", "backend")):
            raise ConversionError(f"Layer '{owner}' refers to the Keras internals {module!r}; it was refused.")


# Keys every layer config may carry besides its constructor's own arguments
# (the base Layer's keyword arguments, in tf-keras and Keras 3).
BASE_LAYER_KEYS = frozenset(
    "name trainable dtype batch_input_shape input_shape batch_size input_dim input_length autocast "
    "activity_regularizer dynamic implementation".split()
)
MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
MODEL_KEYS = frozenset({"name", "trainable", "dtype", "layers", "input_layers", "output_layers", "build_input_shape"})


# Some constructors take options out of **kwargs instead of naming them.
KWARGS_READ = re.compile(r"""kwargs\.(?:pop|get)\(\s*["'](\w+)["']""")


@functools.cache
def constructor_keys(cls: type) -> frozenset[str]:
    """The keyword arguments ``cls`` and its bases take: what its config may hold."""
    keys = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
            source = inspect.getsource(init)
        except (TypeError, ValueError, OSError):
            continue
        keys |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        keys |= set(KWARGS_READ.findall(source))
    return frozenset(keys - {"self"})


def check_keys(model_config: dict, resolve: Callable[[dict], type | None]) -> None:
    """Every key of every layer config must be an argument its built-in
    class takes: an allowlist of keys, beside the allowlist of classes."""
    for layer in walk_layers(model_config):
        class_name, config = layer["class_name"], layer["config"]
        if class_name in MODEL_CLASSES:
            allowed = MODEL_KEYS
        elif (cls := resolve(layer)) is not None:
            allowed = constructor_keys(cls) | BASE_LAYER_KEYS
        else:
            continue  # not a layer class (the class checks decide about it)
        unknown = sorted(key for key in config if key not in allowed)
        if unknown:
            raise ConversionError(
                f"Layer '{config['name']}' ({class_name}) has settings Keras does not define for it "
                f"({', '.join(map(repr, unknown[:5]))}); it was refused."
            )


def _is_keras_activation(obj: dict) -> bool:
    return obj.get("module") in ACTIVATION_MODULES and obj.get("config") in ACTIVATION_NAMES


def check_tfjs_layers(model_config: dict, tfjs_layers: frozenset[str]) -> None:
    """A layer TF.js cannot run fails the version with its name and class,
    instead of an obscure load error (tf-keras and TF.js topologies)."""
    for layer in walk_layers(model_config["config"].get("layers", [])):
        class_name, name = layer["class_name"], layer["config"]["name"]
        if class_name not in tfjs_layers:
            raise NotExpressible(
                f"Layer '{name}' ({class_name}) has no TF.js equivalent: TF.js 4.22 does not implement it."
            )
        if class_name == "GRU" and layer["config"].get("reset_after"):
            raise NotExpressible(
                f"Layer '{name}' (GRU) uses reset_after=True (the Keras default), which TF.js' GRU layer does not "
                "implement."
            )

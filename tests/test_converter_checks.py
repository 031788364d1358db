"""Checks the converter makes on a model's config before anything runs."""

from __future__ import annotations

import pytest

from converter.errors import ConversionError
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


def test_gru_with_reset_after_is_refused_with_advice():
    with pytest.raises(ConversionError) as failure:
        check_tfjs_support(config(layer("GRU", "gru", reset_after=True)))
    assert "reset_after=False" in str(failure.value)

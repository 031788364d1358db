from __future__ import annotations

import numpy as np
import pytest

from conversions.results import clean_parity
from converter import parity
from converter.errors import ConversionError

SPECS = [parity.InputSpec("x", (None, 3), "float32")]


def test_inputs_are_deterministic_and_fill_free_dimensions():
    specs = [parity.InputSpec("x", (None, None, 3), "float32"), parity.InputSpec("ids", (None, 5), "int32")]
    first, second = parity.make_inputs(specs), parity.make_inputs(specs)
    assert [a.shape for a in first] == [(2, 16, 3), (2, 5)]
    assert first[1].dtype == np.int32 and first[1].min() >= 0 and first[1].max() < 10
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_matching_outputs_pass_with_their_figures():
    inputs = parity.make_inputs(SPECS)
    want = [np.array([[1.0, -2.0, 4.0]])]
    got = [np.array([[1.00001, -2.0, 4.0]])]
    figures = parity.check(want, got, parity.Tolerance(1e-4, 0), SPECS, inputs)
    assert figures["passed"] is True
    assert figures["max_abs_error"] == pytest.approx(1e-5)
    assert figures["max_rel_error"] == pytest.approx(1e-5 / 4)
    assert figures["inputs"] == [{"name": "x", "shape": [2, 3], "dtype": "float32"}]


def test_outputs_over_tolerance_fail_with_the_figures_in_words():
    inputs = parity.make_inputs(SPECS)
    with pytest.raises(ConversionError) as failure:
        parity.check([np.array([1.0, 2.0])], [np.array([1.0, 2.5])], parity.Tolerance(1e-4, 1e-3), SPECS, inputs)
    assert str(failure.value) == (
        "TF.js predictions differ from TensorFlow's: max absolute error 0.5, max relative error 0.25 "
        "(allowed 0.0001 + 0.001×|value|)."
    )
    assert failure.value.parity["passed"] is False
    assert failure.value.parity["max_abs_error"] == 0.5


def test_shape_mismatch_is_a_conversion_error():
    with pytest.raises(ConversionError, match=r"shape \[3\], TensorFlow \[2\]"):
        parity.compare([np.zeros(2)], [np.zeros(3)], parity.Tolerance())


def test_parity_figures_from_the_sandbox_are_sanitised():
    figures = {
        "max_abs_error": "1e-6", "max_rel_error": 0, "atol": 1e-4, "rtol": 1e-3, "passed": 1,
        "inputs": [{"name": "x", "shape": [2, "3"], "dtype": "float32", "extra": "<script>"}], "evil": "x",
    }  # fmt: skip
    assert clean_parity(figures) == {
        "max_abs_error": 1e-6, "max_rel_error": 0.0, "atol": 1e-4, "rtol": 1e-3, "passed": True,
        "inputs": [{"name": "x", "shape": [2, 3], "dtype": "float32"}],
    }  # fmt: skip
    assert clean_parity({"max_abs_error": "nope"}) is None
    assert clean_parity("garbage") is None


def test_non_finite_reference_outputs_are_refused_in_words():
    tolerance = parity.Tolerance()
    with pytest.raises(ConversionError, match=r"^TensorFlow's own outputs hold NaN or infinite values"):
        parity.compare([np.array([np.inf, 1.0])], [np.array([np.inf, 1.0])], tolerance)
    with pytest.raises(ConversionError, match=r"^TF.js returned NaN or infinite values"):
        parity.compare([np.array([1.0, 2.0])], [np.array([np.nan, 2.0])], tolerance)

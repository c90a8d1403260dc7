"""Holm step-down adjustment against statsmodels and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from evalkit.analysis.multiplicity import holm_adjust


def test_hand_worked_example():
    # m = 4: sorted 0.01, 0.02, 0.03, 0.04 -> 0.04, 0.06, 0.06 (monotone), 0.06
    adjusted = holm_adjust({"a": 0.03, "b": 0.01, "c": 0.04, "d": 0.02})
    assert adjusted == pytest.approx({"a": 0.06, "b": 0.04, "c": 0.06, "d": 0.06})
    assert list(adjusted) == ["a", "b", "c", "d"]


def test_caps_at_one_single_test_and_empty():
    assert holm_adjust({"x": 0.3, "y": 0.6}) == {"x": 0.6, "y": 0.6}
    assert holm_adjust({"x": 0.7, "y": 0.8}) == {"x": 1.0, "y": 1.0}
    assert holm_adjust({"only": 0.023}) == {"only": 0.023}
    assert holm_adjust({}) == {}


def test_rejects_invalid_p_values():
    for bad in (-0.1, 1.5, float("nan"), "0.1"):
        with pytest.raises(ValueError, match="p-value"):
            holm_adjust({"x": 0.1, "y": bad})


@settings(max_examples=30, deadline=None)  # multipletests is slow-ish per call
@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=12))
def test_matches_statsmodels_holm(p_values):
    keyed = {f"h{i}": p for i, p in enumerate(p_values)}
    ours = np.array(list(holm_adjust(keyed).values()))
    expected = multipletests(p_values, method="holm")[1]
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)
    assert (ours >= np.array(p_values)).all()

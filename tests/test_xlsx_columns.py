"""The XLSX writer formats a column at a time; every cell must be what `_cell` writes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.io.xlsx import _cell, column_cells

VALUES = st.one_of(
    st.lists(st.text(max_size=5) | st.sampled_from(["", "a<b", "x&y", "\x01bad", "=1+1"]),
             min_size=1, max_size=8).map(lambda v: pd.Series(v, dtype=object)),
    st.lists(st.text(max_size=5) | st.none(), min_size=1, max_size=8).map(
        lambda v: pd.Series(v, dtype=object)),
    st.lists(st.text(max_size=5), min_size=1, max_size=8).map(lambda v: pd.Series(v, dtype="str")),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=8).map(
        lambda v: pd.Series(v, dtype=float)),
    st.lists(st.integers(-2**63, 2**63 - 1), min_size=1, max_size=8).map(
        lambda v: pd.Series(v, dtype=np.int64)),
    st.lists(st.booleans(), min_size=1, max_size=8).map(lambda v: pd.Series(v, dtype=bool)),
    st.lists(st.integers(1, 5) | st.text(max_size=3) | st.none() | st.floats(),
             min_size=1, max_size=8).map(lambda v: pd.Series(v, dtype=object)),
    st.lists(st.dates(min_value=dt.date(1950, 1, 1)) | st.none(), min_size=1, max_size=8).map(
        lambda v: pd.Series(v, dtype=object)),
)


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_column_cells_are_the_cells_written_one_by_one(column: pd.Series) -> None:
    expected = [_cell(f"C{n}", v) for n, v in enumerate(column.astype(object).tolist(), start=2)]
    assert column_cells("C", column) == expected

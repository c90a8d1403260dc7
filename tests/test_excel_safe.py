"""Formula escaping of CSV output: the fast column scan escapes exactly what a cell check does."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.io.files import excel_safe, excel_safe_frame


def _cell_by_cell(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(lambda column: column.map(excel_safe)
                       if pd.api.types.is_string_dtype(column) else column)


def test_escaping_matches_the_cell_by_cell_rule() -> None:
    rng = np.random.default_rng(3)
    pieces = np.array(["", "PO", "=SUM(A1)", "+44 20", "-3", "@me", "\tx", "\rx", "a\n=b",
                       "x=y", "'quoted", "ok"], dtype=object)
    frame = pd.DataFrame({
        "mixed": pieces[rng.integers(0, len(pieces), 500)],
        "safe": [f"S{i:04d}" for i in range(500)],
        "with_missing": [None if i % 5 == 0 else "=1+1" if i % 3 == 0 else "t"
                         for i in range(500)],
        "number": np.arange(500) * -1.5,
        "text_dtype": pd.array(["-x", "y", None, "@z", "w"] * 100, dtype="string"),
    })
    expected = _cell_by_cell(frame).to_csv(index=False)
    assert excel_safe_frame(frame).to_csv(index=False) == expected
    assert "'=SUM(A1)" in expected and "'-3" in expected


def test_a_frame_with_nothing_to_escape_is_returned_unchanged() -> None:
    frame = pd.DataFrame({"id": ["A1", "B2"], "value": [-1.0, 2.0], "note": ["x-y", "a\n-b"]})
    assert excel_safe_frame(frame).equals(frame)
    assert excel_safe_frame(frame.iloc[:0]).empty

"""write_csv formats plain frames itself; the bytes must be pandas' `to_csv(index=False)`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.io.files import _csv_cells, excel_safe_frame, write_csv

TEXT = st.one_of(st.text(max_size=6), st.sampled_from(["", "a,b", 'say "hi"', "two\nlines",
                                                        "cr\rhere", " pad ", "=SUM(A1)", "é"]))
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.1 + 0.2, 1e16, 1e-5, 123456789.125, -0.0, 5e-324])
COLUMN = st.one_of(
    st.lists(TEXT, min_size=1, max_size=6).map(lambda v: pd.Series(v, dtype=object)),
    st.lists(TEXT | st.none(), min_size=1, max_size=6).map(lambda v: pd.Series(v, dtype=object)),
    st.lists(TEXT, min_size=1, max_size=6).map(lambda v: pd.Series(v, dtype="str")),
    st.lists(FLOATS, min_size=1, max_size=6).map(lambda v: pd.Series(v, dtype=float)),
    st.lists(st.integers(-2**63, 2**63 - 1), min_size=1, max_size=6).map(
        lambda v: pd.Series(v, dtype=np.int64)),
    st.lists(st.booleans(), min_size=1, max_size=6).map(lambda v: pd.Series(v, dtype=bool)),
)


def frames():
    return st.integers(1, 4).flatmap(lambda width: st.tuples(
        st.lists(COLUMN, min_size=width, max_size=width),
        st.lists(TEXT, min_size=width, max_size=width, unique=True)))


@settings(max_examples=400, deadline=None)
@given(frames(), st.integers(0, 6))
def test_write_csv_bytes_are_pandas_to_csv(tmp_path_factory, parts, rows: int) -> None:
    columns, names = parts
    frame = pd.DataFrame({name: column.iloc[:rows].reset_index(drop=True).reindex(
        range(min(rows, len(column)))) for name, column in zip(names, columns, strict=True)})
    frame = frame.iloc[:min(len(c) for c in columns)].reset_index(drop=True) \
        if rows else frame.iloc[:0]
    folder = tmp_path_factory.mktemp("csv")
    write_csv(folder / "ours.csv", frame)
    excel_safe_frame(frame).to_csv(folder / "pandas.csv", index=False, encoding="utf-8")
    assert (folder / "ours.csv").read_bytes() == (folder / "pandas.csv").read_bytes()


def test_plain_frames_take_the_fast_path_and_others_do_not() -> None:
    plain = pd.DataFrame({"id": ["a", "b"], "p": [0.5, np.nan], "n": [1, 2]})
    assert _csv_cells(plain) is not None
    dated = plain.assign(when=pd.to_datetime(["2026-01-01", "2026-01-02"]))
    assert _csv_cells(dated) is None
    assert _csv_cells(plain.set_index("id")) is None


def test_a_large_frame_is_written_in_chunks_with_the_same_bytes(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": [f"S{i}" for i in range(250_123)], "group": "Treatment",
                          "p": 0.5})
    write_csv(tmp_path / "ours.csv", frame)
    frame.to_csv(tmp_path / "pandas.csv", index=False)
    assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()

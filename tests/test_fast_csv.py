"""read_table reads plain CSV files (no quotes) with pandas' C parser; the result must be
exactly what the csv-module path gives, and every file the fast path cannot take falls back."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.errors import InputError
from evalkit.io.files import _frame_from_rows, _plain_csv_frame, read_table

CELL = st.sampled_from(["", " ", "a", " b ", "PO", "N07", "x y", "é", "0012", "NA", "1.5",
                        "\t", "#c"])
ROW = st.lists(CELL, min_size=0, max_size=5)


def by_csv_module(text: str, delimiter: str, path: Path) -> pd.DataFrame:
    records = list(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True))
    while records and not any(cell.strip() for cell in records[0]):
        records.pop(0)
    return _frame_from_rows(records[0], records[1:], path)


def outcome(read, *args):
    try:
        return read(*args)
    except (InputError, csv.Error) as error:
        return str(error)


def assert_fast_path_agrees(rows: list[list[str]], delimiter: str, newline: str,
                            final_newline: bool, quoted: bool = False) -> None:
    """The C-parser path reads the file as the csv module does (or declines it)."""
    text = newline.join(delimiter.join(row) for row in rows) + (newline if final_newline else "")
    path = Path("roster.csv")
    fast = outcome(_plain_csv_frame, text, delimiter, path, quoted)
    if fast is None:
        return  # declined: the csv module reads it
    slow = outcome(by_csv_module, text, delimiter, path)
    if isinstance(slow, str) or isinstance(fast, str):
        assert fast == slow
        return
    pd.testing.assert_frame_equal(fast, slow)
    assert list(fast.index) == list(slow.index)


@settings(max_examples=400, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=8), st.sampled_from([",", ";", "\t"]),
       st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_the_fast_path_reads_exactly_what_the_csv_module_reads(rows, delimiter, newline,
                                                               final_newline) -> None:
    assert_fast_path_agrees(rows, delimiter, newline, final_newline)


@pytest.mark.parametrize("text", [
    'a,b\n"x, y",2\n',          # quotes: the csv module reads them
    "a,b\n1,2,3\n",             # a row longer than the header: the exact error comes from there
    "\n\na,b\n1,2\n",           # blank lines before the header
    "a,b\n1,\x07\n",            # a control character
])
def test_files_the_fast_path_declines_are_still_read_or_refused_as_before(tmp_path: Path,
                                                                          text: str) -> None:
    assert _plain_csv_frame(text, ",", tmp_path / "f.csv") is None
    (tmp_path / "f.csv").write_text(text)
    assert outcome(read_table, tmp_path / "f.csv") is not None


def test_a_large_plain_roster_takes_the_fast_path(tmp_path: Path) -> None:
    text = "staff_id,grade,pdu_code\n" + "".join(f"S{i}, PO ,N07\n" for i in range(5000))
    fast = _plain_csv_frame(text, ",", tmp_path / "f.csv")
    assert fast is not None and len(fast) == 5000 and fast.iloc[0].tolist() == ["S0", "PO", "N07"]


@given(st.lists(st.sampled_from(["B001", "b001", "Ab", "ß", "SS", "ss", "x y", "x  Y", "İ", "ﬁ",
                                 "FI", "\x00", ""]), max_size=12))
def test_identity_keys_at_once_equal_identity_key_cell_by_cell(values: list[str]) -> None:
    from evalkit.allocation.roster import identity_key, identity_keys

    series = pd.Series(values, dtype=object)
    assert identity_keys(series).tolist() == [identity_key(v) for v in values]

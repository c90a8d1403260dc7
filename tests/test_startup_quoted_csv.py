"""read_table reads CSV files whose quotes only wrap whole one-line fields (Excel's
`"Kent, Surrey and Sussex"`) with pandas' C parser too: the cells must be exactly what the
csv-module path gives, and every other use of quotes falls back to the csv module."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.io.files import (
    _CONTROL,
    _plain_csv_frame,
    _quotes_wrap_whole_fields,
    _stripped,
    has_control_character,
)
from tests.test_fast_csv import assert_fast_path_agrees, by_csv_module

CELL = st.sampled_from([
    "", " ", "a", " b ", "PO", "NA", "1.5", "é", '"x, y"', '"a""b"', '""', '" q "', '""""',
    '"x; y"', '"tab\there"', '"1,2,3"', '" "',
    'a"b', '"open', 'close"', ' "s"', '"s" ', '"two\nlines"', '"',   # the csv module reads these
])
ROW = st.lists(CELL, min_size=0, max_size=5)


@settings(max_examples=600, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=8), st.sampled_from([",", ";", "\t"]),
       st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_quoted_fields_read_by_pandas_equal_the_csv_module(rows, delimiter, newline,
                                                           final_newline) -> None:
    assert_fast_path_agrees(rows, delimiter, newline, final_newline, quoted=True)


@pytest.mark.parametrize(("text", "whole"), [
    ('region,n\n"Kent, Surrey and Sussex",1\n', True),
    ('a,b\n"say ""hi""",2\n', True),
    ('"a","b"\n"",""\n', True),
    ('a,b\nx"y,2\n', False),           # a quote inside an unquoted field
    ('a,b\n"x"y,2\n', False),          # text after the closing quote
    ('a,b\n "x",2\n', False),          # a space before the opening quote
    ('a,b\n"x,2\n', False),            # never closed
    ('a,b\n"two\nlines",2\n', False),  # a quoted field across lines
])
def test_which_quotes_wrap_whole_fields(text: str, whole: bool) -> None:
    assert _quotes_wrap_whole_fields(text, ",") is whole


def test_the_national_dataset_takes_the_fast_path_and_reads_as_before() -> None:
    path = Path(__file__).parent / "reference" / "datasets" / "national.csv"
    text = path.read_text()
    fast = _plain_csv_frame(text, ",", path, quoted=True)
    assert fast is not None
    pd.testing.assert_frame_equal(fast, by_csv_module(text, ",", path))


@given(st.text(alphabet=st.sampled_from(["a", "é", "ł", "😀", "\t", "\n", "\r", "\x07", "\x1f",
                                         "\x7f", "\x80", "\x9f", "\ud800"]), max_size=40))
def test_has_control_character_is_the_control_pattern_search(text: str) -> None:
    assert has_control_character(text) is bool(_CONTROL.search(text))


@pytest.mark.parametrize("position", [0, (1 << 20) - 1, 1 << 20, (3 << 20) + 5])
def test_has_control_character_finds_one_anywhere_in_a_long_text(position: int) -> None:
    text = "é" * ((3 << 20) + 10)
    assert not has_control_character(text)
    assert has_control_character(text[:position] + "\x0b" + text[position + 1:])


def test_a_column_of_few_texts_is_stripped_once_per_text_with_short_rows_blank() -> None:
    column = pd.Series([" PO ", "PO", None, "SPO "] * 400, dtype=object)
    cells = _stripped(column)
    assert cells.tolist() == ["PO", "PO", "", "SPO"] * 400
    assert cells[0] is cells[4] and cells[3] is cells[7]   # one object per distinct text

"""The fast paths of roster reading and validation give what the cell-by-cell code gives.

Each fast path (strip and blank checks on the cells joined on NUL, whitespace found by deleting
bytes, line breaks by substring search) is compared with the code it replaces, on generated
inputs holding the awkward characters: Unicode spaces, tabs, line breaks, BOMs, delimiters,
NULs, empty cells.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.allocation import roster
from evalkit.errors import InputError
from evalkit.io import files

AWKWARD = [" ", "\t", "\xa0", "\u2028", "\u3000", "\x85", "\ufeff", "\x1f", "\x0b", "\x00",
           "\r", "\n", ",", ";", "é", "A", "b", "1", "-", "ß", "İ", "\u200b", "\u2003"]
PLAIN_TEXT = ["a", "B", "7", " ", "\xa0", "\u3000", "\u2028", "\x85", "\ufeff", "é", "ß", ";",
              "\t", "_"]   # characters a plain (unquoted, no control character) CSV may hold
cell_texts = st.text(alphabet=st.sampled_from(AWKWARD), max_size=6)
cell_lists = st.lists(st.one_of(cell_texts, st.sampled_from(["", " ", "x", "X1", "a b"])),
                      max_size=12)
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def old_stripped(cells: np.ndarray) -> np.ndarray:
    """`_stripped` before the fast path, for a column that is not mostly repeated."""
    return np.array([cell.strip() if isinstance(cell, str) else "" for cell in cells],
                    dtype=object)


def old_require_no_blanks(frame: pd.DataFrame, column: str, path: Path, what: str) -> None:
    cells = frame[column].astype(str).tolist()
    position = next((at for at, cell in enumerate(cells) if not cell or cell.isspace()), None)
    if position is not None:
        raise InputError(f"blank {what}; every row needs one", file=path,
                         row=int(frame.index[position]) + 2, column=column)


def old_require_plain_text(frame: pd.DataFrame, columns: list[str], path: Path) -> None:
    for column in columns:
        if not re.search(r"[\t\r\n]", "\x00".join(frame[column].astype(str).tolist())):
            continue
        bad = frame[column].astype(str).str.contains(re.compile(r"[\t\r\n]"))
        if bad.any():
            position = int(bad.to_numpy().argmax())
            raise InputError(f"{frame[column].iloc[position]!r} contains a tab or line break; "
                             "retype the cell on one line", file=path,
                             row=int(frame.index[position]) + 2, column=column)


def outcome(function, *args) -> object:
    """A call's result, or its error's message and place (or type, for another error)."""
    try:
        return function(*args)
    except InputError as error:
        return ("error", str(error), error.file, error.row, error.column)
    except Exception as error:  # noqa: BLE001 - the old code's own failures must be the same
        return ("crash", type(error).__name__, str(error))


@st.composite
def plain_csv_texts(draw) -> tuple[str, str]:
    """A CSV text without quotes or control characters: mostly rectangular, sometimes not."""
    delimiter = draw(st.sampled_from(list(files.DELIMITERS)))
    alphabet = [c for c in PLAIN_TEXT if c != delimiter]
    width = draw(st.integers(1, 4))
    cell = st.text(alphabet=st.sampled_from(alphabet), max_size=4)
    rows = draw(st.lists(st.lists(cell, min_size=width, max_size=width), min_size=1,
                         max_size=8))
    lines = [delimiter.join(row) for row in rows]
    if draw(st.booleans()):   # a blank, short or long line somewhere
        at = draw(st.integers(0, len(lines) - 1))
        lines[at] = draw(st.sampled_from(["", lines[at] + delimiter, lines[at].partition(
            delimiter)[0]]))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    text = ending.join(lines) + draw(st.sampled_from(["", ending, ending * 2, "\r"]))
    return draw(st.sampled_from(["", "\ufeff"])) + text, delimiter


@SETTINGS
@given(plain_csv_texts())
def test_plain_csv_frame_equals_the_pandas_read(sample: tuple[str, str]) -> None:
    text, delimiter = sample
    fast = outcome(files._plain_csv_frame, text, delimiter, Path("staff.csv"), True)
    with mock.patch.object(files, "strip_changes_nothing", lambda cells: False):
        slow = outcome(files._plain_csv_frame, text, delimiter, Path("staff.csv"), True)
    if isinstance(slow, pd.DataFrame):
        pd.testing.assert_frame_equal(fast, slow)
        assert list(fast.index) == list(slow.index)
    else:
        assert fast == slow


@SETTINGS
@given(plain_csv_texts(), st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]))
def test_read_table_equals_the_cell_by_cell_read(sample: tuple[str, str], encoding: str) -> None:
    text, _ = sample
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "staff.csv"
        try:
            path.write_bytes(text.encode(encoding))
        except UnicodeEncodeError:
            return
        fast = outcome(files.read_table, path)
        with mock.patch.object(files, "strip_changes_nothing", lambda cells: False):
            slow = outcome(files.read_table, path)
    if isinstance(slow, pd.DataFrame):
        pd.testing.assert_frame_equal(fast, slow)
    else:
        assert fast == slow


@SETTINGS
@given(cell_lists)
def test_strip_changes_nothing_only_when_true(cells: list[str]) -> None:
    if files.strip_changes_nothing(cells):
        assert [cell.strip() for cell in cells] == cells
    column = np.array(cells, dtype=object)
    assert files._stripped(column).tolist() == old_stripped(column).tolist()


def test_strip_changes_nothing_is_unsure_of_missing_cells() -> None:
    assert not files.strip_changes_nothing(["a", float("nan")])
    assert not files.strip_changes_nothing(["a\x00 ", "b"])
    assert not files.strip_changes_nothing(["a", "b\x1f"])
    assert files.strip_changes_nothing(["a b", "c", ""])
    column = np.array(["x", np.nan, " y"], dtype=object)
    assert files._stripped(column).tolist() == ["x", "", "y"]


@SETTINGS
@given(st.text(alphabet=st.sampled_from(AWKWARD + [chr(c) for c in range(0x20)]), max_size=20))
def test_has_whitespace_is_isspace(text: str) -> None:
    expected = any(character.isspace() for character in text)
    assert roster.has_whitespace(text) == expected
    if text.isascii():
        assert files.has_ascii_whitespace(text) == expected


@SETTINGS
@given(cell_lists)
def test_blank_and_plain_text_checks_agree_with_the_cell_by_cell_code(cells: list[str]) -> None:
    frame = pd.DataFrame({"staff_id": cells}, dtype=object, index=range(3, 3 + len(cells)))
    path = Path("staff.csv")
    if roster.surely_no_blank(cells):
        assert all(cell and not cell.isspace() for cell in cells)
    assert outcome(roster.require_no_blanks, frame, "staff_id", path, "staff ID") == \
        outcome(old_require_no_blanks, frame, "staff_id", path, "staff ID")
    assert outcome(roster.require_plain_text, frame, ["staff_id"], path) == \
        outcome(old_require_plain_text, frame, ["staff_id"], path)
    series = frame["staff_id"]
    assert roster.identity_keys(series).tolist() == [roster.identity_key(v) for v in cells]


def test_surely_no_blank_is_unsure_of_what_it_cannot_see() -> None:
    assert not roster.surely_no_blank([])
    assert not roster.surely_no_blank([""])
    assert not roster.surely_no_blank(["a", "", "b"])
    assert not roster.surely_no_blank(["a", "\u3000"])
    assert not roster.surely_no_blank(["a\x00", "b"])
    assert not roster.surely_no_blank(["a", float("nan")])
    assert roster.surely_no_blank(["a", "B7"])


@pytest.mark.parametrize("cells", [["A1", "\xa0"], ["A1", " \t"], ["A1", ""], ["A1", "\u2028"]])
def test_a_blank_id_is_found_at_its_row(cells: list[str]) -> None:
    frame = pd.DataFrame({"staff_id": cells}, dtype=object, index=[0, 5])
    with pytest.raises(InputError) as raised:
        roster.require_no_blanks(frame, "staff_id", Path("staff.csv"), "staff ID")
    assert raised.value.row == 7


mixed_cells = st.lists(st.one_of(cell_texts, st.integers(-5, 5), st.none(),
                                 st.just(float("nan")), cell_texts.map(np.str_)), max_size=8)


@SETTINGS
@given(mixed_cells)
def test_cells_that_are_not_text_are_checked_as_str_shows_them(cells: list) -> None:
    frame = pd.DataFrame({"staff_id": pd.Series(cells, dtype=object)}, index=range(len(cells)))
    path = Path("staff.csv")
    assert outcome(roster.require_no_blanks, frame, "staff_id", path, "staff ID") == \
        outcome(old_require_no_blanks, frame, "staff_id", path, "staff ID")
    assert outcome(roster.require_plain_text, frame, ["staff_id"], path) == \
        outcome(old_require_plain_text, frame, ["staff_id"], path)
    expected = frame["staff_id"].astype(str).tolist()
    if all(isinstance(cell, str) for cell in expected):
        assert roster.joined_text(frame["staff_id"]) == (expected, "\x00".join(expected))
    else:   # missing cells stay NaN in astype(str): the join fails as it did
        assert outcome(roster.joined_text, frame["staff_id"])[:2] == ("crash", "TypeError")


@settings(max_examples=300, deadline=None)
@given(ids=st.lists(st.text(alphabet="aAb 1", max_size=3), max_size=12), sort=st.booleans())
def test_the_sorted_uniqueness_check_agrees_with_the_hash_table(ids: list[str],
                                                                 sort: bool) -> None:
    """`ascending_and_distinct` proves uniqueness only when it holds, and finds every sorted
    set of unique IDs; `require_unique` then fails exactly when IDs repeat (case and spaces
    ignored), sorted or not."""
    keys = roster.identity_keys(pd.Series(sorted(ids) if sort else ids, dtype=object))
    fast = roster.ascending_and_distinct(keys)
    assert not fast or keys.is_unique
    if keys.is_unique and keys.is_monotonic_increasing:
        assert fast
    frame = pd.DataFrame({"staff_id": keys.tolist()})
    if keys.is_unique:
        roster.require_unique(frame, "staff_id", Path("staff.csv"))
    else:
        with pytest.raises(InputError, match="duplicate ID"):
            roster.require_unique(frame, "staff_id", Path("staff.csv"))

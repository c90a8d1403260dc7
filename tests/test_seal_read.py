"""The seal's read lets SQLite join whole windows of text and integer columns
(`evalkit.register.stored_columns`); its digest must be the digest of the plain read of every
cell, whatever the cells hold: NULLs, blobs, numbers in text columns, U+001F or NUL inside a
text, non-ASCII text, int64's limits, gaps in rowids and any window size."""

from __future__ import annotations

import contextlib
import sqlite3
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit import register as register_module
from evalkit.register import SEALED_TABLES, sealed_digest, stored_columns

TEXTS = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=5)
ODD_TEXTS = st.text(alphabet=st.sampled_from(["a", "\x1f", "\x00", "é", "😀", ","]),
                    max_size=4)
INTEGERS = st.integers(-2**63, 2**63 - 1)
CELLS = st.one_of(st.none(), st.binary(max_size=3), TEXTS, ODD_TEXTS, INTEGERS,
                  st.floats(allow_nan=False))
DECLARED = ["TEXT", "INTEGER", "REAL", "VARCHAR(10)", "BIGINT", ""]


def _table(connection: sqlite3.Connection, name: str, declared: list[str],
           rows: list[tuple], deleted: set[int]) -> None:
    columns = ", ".join(f'"c{at}" {kind}' for at, kind in enumerate(declared))
    connection.execute(f'CREATE TABLE "{name}" ({columns})')
    marks = ", ".join("?" for _ in declared)
    connection.executemany(f'INSERT INTO "{name}" VALUES ({marks})', rows)
    connection.executemany(f'DELETE FROM "{name}" WHERE rowid = ?', [(r,) for r in deleted])


def _digests(connection: sqlite3.Connection, window: int) -> tuple[str, str]:
    with mock.patch.object(register_module, "_DIGEST_CHUNK", window):
        return (sealed_digest(connection, [], 2),
                sealed_digest(connection, [], 2, cell_by_cell=True))


@st.composite
def tables(draw: st.DrawFn, cells: st.SearchStrategy) -> tuple[list[str], list[tuple],
                                                                 set[int]]:
    declared = draw(st.lists(st.sampled_from(DECLARED), min_size=1, max_size=4))
    kinds = [draw(st.sampled_from([TEXTS, ODD_TEXTS, INTEGERS, cells])) for _ in declared]
    rows = draw(st.lists(st.tuples(*kinds), max_size=14))  # a column mostly of one kind
    deleted = draw(st.sets(st.integers(1, max(len(rows), 1)), max_size=len(rows)))
    return declared, rows, deleted


@settings(max_examples=300, deadline=None)
@given(units=tables(CELLS), allocation=tables(CELLS), window=st.integers(1, 6))
def test_the_joined_read_digests_any_cells_as_the_plain_read_does(units, allocation,
                                                                  window: int) -> None:
    with contextlib.closing(sqlite3.connect(":memory:")) as connection:
        connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for name, (declared, rows, deleted) in zip(SEALED_TABLES, (units, allocation),
                                                   strict=True):
            _table(connection, name, declared, rows, deleted)
        joined, plain = _digests(connection, window)
    assert joined == plain


@settings(max_examples=80, deadline=None)
@given(texts=st.lists(st.one_of(TEXTS, ODD_TEXTS), min_size=1, max_size=20),
       numbers=st.data(), window=st.integers(1, 7))
def test_clean_text_and_integer_columns_are_joined_by_sqlite(texts: list[str], numbers,
                                                             window: int) -> None:
    """Where every cell is text without U+001F, or an integer, the window comes back joined
    (no Python object per cell), and its cells are the ones stored."""
    integers = numbers.draw(st.lists(INTEGERS, min_size=len(texts), max_size=len(texts)))
    with contextlib.closing(sqlite3.connect(":memory:")) as connection:
        _table(connection, "t", ["TEXT", "INTEGER"], list(zip(texts, integers, strict=True)),
               set())
        with mock.patch.object(register_module, "_DIGEST_CHUNK", window):
            windows = list(stored_columns(connection, "t", ["c0", "c1"]))
    assert [v for w in windows for v in w["c0"].python_values()] == texts
    assert [v for w in windows for v in w["c1"].python_values()] == integers
    assert all(w["c1"].integers is not None for w in windows)
    assert all((w["c0"].texts is not None) == all("\x1f" not in v for v in
                                                  w["c0"].python_values()) for w in windows)


def test_a_register_in_utf16_is_read_cell_by_cell() -> None:
    with contextlib.closing(sqlite3.connect(":memory:")) as connection:
        connection.execute("PRAGMA encoding = 'UTF-16le'")
        _table(connection, "t", ["TEXT"], [("é",), ("a",)], set())
        (window,) = stored_columns(connection, "t", ["c0"])
    assert window["c0"].texts is None and window["c0"].values == ["é", "a"]

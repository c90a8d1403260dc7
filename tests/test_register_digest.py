"""The sealed digest encodes rows a column at a time; its bytes must equal the row-by-row
`json.dumps` form that registers sealed by earlier versions were digested with."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.register import row_json_lines

CELLS = st.one_of(st.text(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                  st.none(), st.binary(max_size=4))


def row_by_row(rows: list[tuple]) -> str:
    """The original encoding: one `json.dumps` per row."""
    return "".join(json.dumps(list(row), default=str) + "\x1e" for row in rows)


@settings(max_examples=300)
@given(st.integers(1, 6).flatmap(
    lambda width: st.lists(st.tuples(*[CELLS] * width), min_size=1, max_size=30)))
def test_column_wise_rows_encode_as_json_dumps_does(rows: list[tuple]) -> None:
    assert row_json_lines(rows) == row_by_row(rows)


@given(st.lists(st.text(), min_size=1, max_size=30), st.lists(st.integers(), min_size=1))
def test_uniform_columns_take_the_fast_path_and_still_match(texts: list[str],
                                                            numbers: list[int]) -> None:
    rows = [(text, numbers[i % len(numbers)], float(i) / 7) for i, text in enumerate(texts)]
    assert row_json_lines(rows) == row_by_row(rows)


# Format 2: column-wise hashing (what new registers are sealed with)

import sqlite3  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from evalkit.audit.integrity import seal_differences  # noqa: E402
from evalkit.register import Register, SealHasher, sealed_digest  # noqa: E402

SQLITE_CELLS = st.one_of(st.text(), st.integers(-2**63, 2**63 - 1),
                         st.floats(allow_nan=False), st.none(), st.binary(max_size=4))


def format2(rows: list[tuple], width: int, chunk: int) -> str:
    hasher = SealHasher(2)
    table = hasher.table("t", [f"c{i}" for i in range(width)])
    for start in range(0, len(rows), chunk):
        table.add_rows(rows[start:start + chunk])
    return hasher.hexdigest()


@settings(max_examples=200)
@given(st.integers(1, 4).flatmap(lambda width: st.tuples(
    st.just(width), st.lists(st.tuples(*[SQLITE_CELLS] * width), min_size=1, max_size=25))),
    st.integers(1, 30))
def test_format2_does_not_depend_on_how_rows_are_chunked(table, chunk: int) -> None:
    width, rows = table
    assert format2(rows, width, chunk) == format2(rows, width, len(rows))


@pytest.mark.parametrize("edit", [
    lambda v: "5" if v == 5 else v,             # text where an integer was
    lambda v: 5.0 if v == 5 else v,             # real where an integer was
    lambda v: "a\x00c" if v == "a\x00b" else v,  # past a NUL
    lambda v: np.nextafter(0.1, 1.0) if v == 0.1 else v,  # the last bit of a real
    lambda v: None if v == "" else v,           # null where empty text was
    lambda v: "ab" if v == "a\x00b" else v,
])
def test_format2_sees_every_kind_of_edit(edit) -> None:
    rows = [(5, "a\x00b", 0.1, ""), (6, "x", 0.2, "y")]
    edited = [tuple(float(c) if isinstance(c, np.floating) else c for c in map(edit, row))
              for row in rows]
    assert repr(edited) != repr(rows)
    assert format2(edited, 4, 2) != format2(rows, 4, 2)


def test_text_split_differently_between_cells_changes_the_digest() -> None:
    assert format2([("ab", "c")], 2, 1) != format2([("a", "bc")], 2, 1)


def mixed_frames() -> dict[str, pd.DataFrame]:
    """Sealed tables with every dtype the register may be handed."""
    units = pd.DataFrame({
        "unit_id": ["A", "B", "C"], "count": [1, 2, 3], "share": [0.1, np.nan, 1 / 3],
        "flag": [True, False, True], "mixed": pd.Series([1, "x", None], dtype=object),
        "when": pd.to_datetime(["2026-01-01", "2026-02-01", None]),
        "numpy_objects": pd.Series([np.int64(4), np.float64(2.5), None], dtype=object),
        "text": pd.Series(["é", None, "z"], dtype="string")})
    allocation = pd.DataFrame({"unit_id": ["A", "B", "C"], "group": ["T", "C", "T"],
                               "p": [0.5, 0.5, 0.5]})
    return {"units": units, "allocation": allocation}


@pytest.mark.parametrize("tables", [
    mixed_frames(),
    {"units": mixed_frames()["allocation"], "allocation": mixed_frames()["allocation"]},
], ids=["every dtype (read back)", "plain columns (from memory)"])
def test_the_digest_sealed_at_create_is_the_one_read_back(tmp_path: Path, tables) -> None:
    register = Register.create(tmp_path / "r.sqlite", tables, {"design": {"a": 1}, "m": [1]})
    detail = json.loads(register.query("SELECT detail FROM events WHERE id = 1")[0][0])
    assert detail["seal_format"] == 2
    assert register.sealed_digest(["design", "m"], 2) == detail["sealed"]
    assert seal_differences(register) == []


def test_registers_sealed_with_format_1_still_verify(tmp_path: Path) -> None:
    """A register from before format 2: its created event has no seal_format."""
    register = Register.create(tmp_path / "r.sqlite", mixed_frames(), {"design": {"a": 1}})
    with sqlite3.connect(register.path) as connection:
        legacy = sealed_digest(connection, ["design"], seal_format=1)
        connection.execute("DROP TRIGGER events_no_update")
        connection.execute("UPDATE events SET detail = ? WHERE id = 1",
                           (json.dumps({"sealed": legacy, "sealed_meta": ["design"]}),))
    assert seal_differences(register) == []
    with sqlite3.connect(register.path) as connection:
        connection.execute("DROP TRIGGER allocation_sealed_update")
        connection.execute("UPDATE allocation SET \"group\" = 'C' WHERE unit_id = 'A'")
    assert seal_differences(register) != []


def test_large_tables_read_a_column_at_a_time_read_the_same(tmp_path: Path,
                                                            monkeypatch) -> None:
    import evalkit.register as register_module

    tables = mixed_frames()
    register = Register.create(tmp_path / "r.sqlite", tables, {"design": {"a": 1}})
    whole = {name: register.table(name) for name in tables}
    some = register.table("units", ["share", "unit_id"])
    monkeypatch.setattr(register_module, "LARGE_TABLE_ROWS", 1)
    for name in tables:
        pd.testing.assert_frame_equal(register.table(name), whole[name])
    pd.testing.assert_frame_equal(register.table("units", ["share", "unit_id"]), some)

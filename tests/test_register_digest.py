"""The sealed digest encodes rows a column at a time; its bytes must equal the row-by-row
`json.dumps` form that registers sealed by earlier versions were digested with."""

from __future__ import annotations

import contextlib
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


@pytest.mark.parametrize("name", ["units", "allocation"])
def test_a_frames_digest_is_its_stored_tables_or_none(tmp_path: Path, name: str) -> None:
    """`frame_digest` gives the digest the seal reads back for the stored table, or None
    when SQLite stores some value otherwise than bound (dates, numpy objects, ...)."""
    from evalkit.register import frame_digest

    tables = mixed_frames()
    register = Register.create(tmp_path / "r.sqlite", tables, {"design": {"a": 1}})
    read: dict = {}
    register.sealed_digest(["design"], 2, read)
    columns, stored = read[name]
    assert columns == list(tables[name].columns)
    ours = frame_digest(tables[name])
    assert ours == stored if name == "allocation" else ours is None
    assert frame_digest(tables["allocation"].assign(p=[0.5, 0.5, 0.25])) != read[
        "allocation"][1]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=3), st.one_of(st.none(), st.floats(
    allow_nan=False)), st.one_of(st.none(), st.integers(-2**63, 2**63 - 1))), min_size=1,
    max_size=12))
def test_frame_digests_of_plain_tables_equal_their_stored_digests(rows) -> None:
    import tempfile

    from evalkit.register import frame_digest

    frame = pd.DataFrame(rows, columns=["unit_id", "p", "n"])
    with tempfile.TemporaryDirectory() as scratch:
        register = Register.create(Path(scratch) / "r.sqlite",
                                   {"units": frame, "allocation": frame}, {"design": {}})
        read: dict = {}
        register.sealed_digest(["design"], 2, read)
    ours = frame_digest(frame)
    assert ours is None or ours == read["allocation"][1]


def test_a_negative_zero_is_sealed_as_sqlite_stores_it(tmp_path: Path) -> None:
    """SQLite keeps -0.0 in a REAL column as the integer 0, so it reads back as 0.0: the
    seal made at create must be the read-back one, or `verify` would call it changed."""
    frame = pd.DataFrame({"unit_id": ["A", "B"], "p": [-0.0, 0.5]})
    register = Register.create(tmp_path / "r.sqlite", {"units": frame, "allocation": frame},
                               {"design": {"a": 1}})
    assert register.table("units")["p"].map(lambda value: str(value)).tolist() == ["0.0", "0.5"]
    assert seal_differences(register) == []


SQL_CELLS = st.one_of(st.sampled_from(["PO", "PSO", "1", ""]), st.text(max_size=3),
                      st.integers(-3, 3), st.floats(allow_nan=False, width=32), st.none(),
                      st.just(-0.0), st.binary(max_size=2))


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(SQL_CELLS, SQL_CELLS, st.sampled_from(["a", "b"]),
                          st.one_of(SQL_CELLS, st.sampled_from([1, 1.0, "x", None]))),
                min_size=1, max_size=40), st.integers(1, 7))
def test_large_tables_read_in_one_scan_as_read_sql_query_reads_them(rows, chunk) -> None:
    """Chunked single-scan reading (repeated texts shared) gives read_sql_query's frame,
    dtypes and values, for any mix of SQLite values in a column."""
    import tempfile

    import evalkit.register as register_module

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "t.sqlite"
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE t (a TEXT, b REAL, c TEXT, d)")  # d: any type
            connection.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
        with contextlib.closing(sqlite3.connect(path)) as connection:
            expected = pd.read_sql_query('SELECT * FROM t', connection)
            old_chunk = register_module.LARGE_TABLE_ROWS
            register_module.LARGE_TABLE_ROWS = chunk
            try:
                got = register_module._read_large(connection, "t", ["a", "b", "c", "d"])
            finally:
                register_module.LARGE_TABLE_ROWS = old_chunk
    pd.testing.assert_frame_equal(got, expected)
    for column in got:  # the very values, not only equal ones (1 and 1.0 and True differ)
        assert [type(v) for v in got[column].astype(object)] == \
            [type(v) for v in expected[column].astype(object)]


# Many rows per INSERT statement: the same table, row for row, as one row per statement.

from evalkit import register as register_module  # noqa: E402


def _one_row_per_statement(connection: sqlite3.Connection, name: str,
                           columns: list[list]) -> None:
    marks = ", ".join("?" * len(columns))
    connection.executemany(f'INSERT INTO "{name}" VALUES ({marks})', zip(*columns, strict=True))


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 5), height=st.sampled_from([0, 1, 2, 199, 200, 201, 401, 1000]),
       per_statement=st.sampled_from([1, 3, 200]), data=st.data())
def test_many_rows_per_insert_store_the_rows_one_row_per_insert_would(
        width: int, height: int, per_statement: int, data: st.DataObject) -> None:
    cells = st.one_of(st.text(max_size=5), st.integers(-2**63, 2**63 - 1), st.none(),
                      st.floats(allow_nan=False))
    columns = [data.draw(st.lists(cells, min_size=height, max_size=height)) for _ in range(width)]
    stored = []
    for write in (lambda *args: register_module._insert_rows(*args, per_statement),
                  _one_row_per_statement):
        with contextlib.closing(sqlite3.connect(":memory:")) as connection:
            connection.execute("CREATE TABLE t (" + ", ".join(f"c{i}" for i in range(width)) + ")")
            write(connection, "t", columns)
            stored.append(connection.execute("SELECT rowid, * FROM t ORDER BY rowid").fetchall())
    assert stored[0] == stored[1]
    assert len(stored[0]) == height


def test_a_table_wider_than_the_variable_limit_allows_still_goes_in_row_by_row() -> None:
    with contextlib.closing(sqlite3.connect(":memory:")) as connection:
        limit = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)
        connection.execute("CREATE TABLE t (a, b, c, d)")
        register_module._insert_rows(connection, "t", [list(range(7))] * 4)
        assert connection.execute("SELECT COUNT(*), SUM(a) FROM t").fetchone() == (7, 21)
        connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)


def test_group_sizes_count_known_groups_in_one_scan_and_others_by_group_by(
        tmp_path: Path) -> None:
    groups = pd.DataFrame({"group": ["A", "B", "A", None, "Odd", "A"]})
    register = Register.create(tmp_path / "r.sqlite", {"units": groups, "allocation": groups},
                               {"design": {"a": 1}})
    assert register.group_sizes("allocation", ["A", "B", "Odd"]) == {"A": 3, "B": 1, "Odd": 1}
    assert register.group_sizes("allocation", ["A", "B", "C"]) == {"A": 3, "B": 1, "Odd": 1}
    assert register.group_sizes("allocation", ["A", "A", "B", "Odd"]) == \
        {"A": 3, "B": 1, "Odd": 1}

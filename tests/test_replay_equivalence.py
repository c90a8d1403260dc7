"""`replay` applies turnover events with arrays; it must give what applying them row by row
to a dict of rows gives (the plain reading of the rules)."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.audit.replay import replay, table_differences
from evalkit.register import PDU_SPECIFIC, STAFF_COLUMNS

IDS = st.sampled_from([f"S{i}" for i in range(8)])


def by_rows(original: pd.DataFrame, events: list[tuple[str, dict]]) -> pd.DataFrame:
    rows = {row["staff_id"]: row for row in
            original[STAFF_COLUMNS].fillna("").astype(str).to_dict("records")}
    for kind, detail in events:
        if kind == "enrolled":
            rows[str(detail["staff_id"])] = {c: str(detail.get(c, "")) for c in STAFF_COLUMNS}
        elif detail["staff_id"] in rows:
            rows[detail["staff_id"]].update(
                {"pdu_code": detail["to_pdu"], "pdu_name": detail["pdu_name"],
                 "region": detail["region"]} | dict.fromkeys(PDU_SPECIFIC, ""))
    frame = pd.DataFrame(list(rows.values()), columns=STAFF_COLUMNS)
    return frame.sort_values("staff_id", kind="stable").reset_index(drop=True)


def staff_row(staff_id: str, n: int) -> dict[str, str]:
    return {c: f"{c}{n}" for c in STAFF_COLUMNS} | {"staff_id": staff_id}


EVENT = st.one_of(
    st.tuples(st.just("enrolled"), st.builds(staff_row, IDS, st.integers(0, 3))),
    st.tuples(st.just("transferred"), st.builds(
        lambda s, n: {"staff_id": s, "to_pdu": f"P{n}", "pdu_name": f"PDU {n}",
                      "region": f"R{n}"}, IDS, st.integers(0, 3))))


@settings(max_examples=300, deadline=None)
@given(st.lists(IDS, unique=True, max_size=6), st.lists(EVENT, max_size=8))
def test_replay_equals_the_row_by_row_rules(ids: list[str], events) -> None:
    original = pd.DataFrame([staff_row(s, 9) for s in ids], columns=STAFF_COLUMNS)
    expected = by_rows(original, events)
    got = replay(original, events)
    assert got.astype(object).values.tolist() == expected.values.tolist()
    assert table_differences(got, expected) == []
    if len(expected):
        edited = expected.copy()
        edited.loc[0, "group"] = "tampered"
        assert table_differences(got, edited) != []


def test_the_stored_table_is_compared_column_by_column(tmp_path) -> None:
    from evalkit.audit.replay import stored_table_differences
    from evalkit.register import Register

    staff = pd.DataFrame([staff_row(f"S{i}", i) for i in (3, 1, 2)], columns=STAFF_COLUMNS)
    minimal = pd.DataFrame({"unit_id": ["S1"], "group": ["T"]})
    register = Register.create(tmp_path / "r.sqlite", {
        "units": minimal, "allocation": minimal, "staff_allocation": staff}, {"design": {}})
    expected = staff.sort_values("staff_id").reset_index(drop=True)
    assert stored_table_differences(register, expected) == []
    edited = expected.copy()
    edited.loc[1, "group"] = "Control"
    assert stored_table_differences(register, edited) == [
        "staff S2: group 'group2' stored, 'Control' after replaying the events"]
    assert stored_table_differences(register, expected.iloc[:2]) == [
        "staff S3 is in staff_allocation but no event explains it"]


CELL = st.one_of(st.sampled_from(["", "a", "b", "a\x1fb", "\x1f", "a\x00b"]), st.none(),
                 st.integers(0, 2), st.just(1.5))


@settings(max_examples=150, deadline=None)
@given(st.permutations([f"S{i}" for i in range(6)]),
       st.lists(st.tuples(st.integers(0, 5), st.sampled_from(STAFF_COLUMNS[1:]), CELL),
                max_size=6),
       st.lists(st.integers(0, 5), unique=True, max_size=2), st.integers(1, 4), st.booleans(),
       st.lists(st.sampled_from(["", "\x1f", "a"]), min_size=6, max_size=6))
def test_stored_cells_compared_in_joined_strings_as_cell_by_cell(
        stored_order, edits, deleted, chunk, spread, names) -> None:
    """The joined-string comparison of the stored table (chunks of rows, rowid gaps, NULLs,
    numbers, U+001F and NUL inside texts) lists exactly what the cell-by-cell path lists."""
    import tempfile
    from pathlib import Path

    from evalkit.audit import replay as replay_module
    from evalkit.register import Register

    staff = pd.DataFrame([staff_row(s, int(s[1:])) for s in stored_order], columns=STAFF_COLUMNS)
    staff["name"] = names  # separators inside the expected texts too
    minimal = pd.DataFrame({"unit_id": ["S1"], "group": ["T"]})
    with tempfile.TemporaryDirectory() as scratch:
        register = Register.create(Path(scratch) / "r.sqlite", {
            "units": minimal, "allocation": minimal, "staff_allocation": staff},
            {"design": {}})
        with register.transaction() as connection:
            for row, column, value in edits:
                connection.execute(f'UPDATE staff_allocation SET "{column}" = ? '
                                   "WHERE rowid = ?", (value, row + 1))
            for row in deleted:  # gaps in the rowids
                connection.execute("DELETE FROM staff_allocation WHERE rowid = ?", (row + 1,))
            if spread:  # rowids far apart: read the next rows, not windows of rowids
                connection.execute("UPDATE staff_allocation SET rowid = rowid * 100 + 7")
        expected = staff.drop(index=deleted).sort_values("staff_id").reset_index(drop=True)
        replay_module.COMPARE_CHUNK = chunk
        try:
            fast = replay_module.stored_table_differences(register, expected)
        finally:
            replay_module.COMPARE_CHUNK = 100_000
        assert fast == table_differences(expected, register.table("staff_allocation"))


def test_separators_inside_texts_cannot_make_different_cells_look_alike(tmp_path) -> None:
    """["\x1f", ""] and ["", "\x1f"] join to the same string: they must still differ."""
    from evalkit.audit.replay import stored_table_differences
    from evalkit.register import Register

    staff = pd.DataFrame([staff_row(f"S{i}", i) for i in (1, 2)], columns=STAFF_COLUMNS)
    staff["name"] = ["", "\x1f"]
    minimal = pd.DataFrame({"unit_id": ["S1"], "group": ["T"]})
    register = Register.create(tmp_path / "r.sqlite", {
        "units": minimal, "allocation": minimal, "staff_allocation": staff}, {"design": {}})
    expected = staff.assign(name=["\x1f", ""])
    assert stored_table_differences(register, expected) == [
        "staff S1: name '' stored, '\\x1f' after replaying the events",
        "staff S2: name '\\x1f' stored, '' after replaying the events"]

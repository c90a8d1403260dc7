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

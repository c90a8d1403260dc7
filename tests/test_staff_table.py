"""`staff_allocation` (one row per staff member with PDU details, group and course) must be
the frame the plain join gives: same rows, order, values and dtypes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from evalkit.allocation.assign import compute_assignment, staff_allocation
from evalkit.examples.roster import write_example
from evalkit.register import NOT_IN_TRIAL, STAFF_COLUMNS
from tests.conftest import SEEDS2_CONFIG
from tests.staff_design import staff_level_toml


def joined(design, roster, allocation) -> pd.DataFrame:
    """The reference: a left join on pdu_code, groups mapped by unit ID, sorted by staff ID."""
    staff = roster.staff.merge(roster.pdus[["pdu_code", "pdu_name", "region"]],
                               on="pdu_code", how="left")
    groups = allocation.table.set_index("unit_id")["group"]
    key = staff["staff_id"] if design.trial.unit == "staff" else staff["pdu_code"]
    staff["group"] = key.map(groups).fillna(NOT_IN_TRIAL)
    staff["course"] = staff["grade"].map(design.course_name_for_grade)
    return staff[STAFF_COLUMNS].sort_values("staff_id", kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("unit", ["pdu", "staff"])
@pytest.mark.parametrize("shuffled", [False, True])
def test_the_staff_table_is_the_plain_join(tmp_path: Path, unit: str, shuffled: bool) -> None:
    example = write_example(tmp_path / "example")
    if shuffled:  # staff IDs out of order in the roster
        staff = pd.read_csv(example["staff"], dtype=str, keep_default_na=False)
        staff.sample(frac=1, random_state=3).to_csv(example["staff"], index=False)
    config = SEEDS2_CONFIG
    if unit == "staff":
        config = tmp_path / "staff.toml"
        config.write_text(staff_level_toml(SEEDS2_CONFIG), encoding="utf-8")
    design, roster, _, allocation = compute_assignment(config, example["pdus"],
                                                       example["staff"])
    pd.testing.assert_frame_equal(staff_allocation(design, roster, allocation),
                                  joined(design, roster, allocation))


def grouped_counts(table: pd.DataFrame, strata: list[str]) -> dict:
    """The reference: a groupby on the text stratum key, unstacked with zeros."""
    from evalkit.allocation.allocate import stratum_keys

    counts = table.assign(stratum=stratum_keys(table, strata))
    by_stratum = counts.groupby(["stratum", "group"]).size().unstack(fill_value=0)
    return {s: {g: int(n) for g, n in row.items()} for s, row in by_stratum.iterrows()}


@pytest.mark.parametrize("strata", [[], ["region"], ["region", "pdu_code"]])
def test_manifest_counts_are_the_grouped_counts(strata: list[str]) -> None:
    from evalkit.allocation.assign import stratum_group_counts

    table = pd.DataFrame({
        "unit_id": [f"U{i}" for i in range(9)],
        "region": ["North", "North", "South", "South", "South", "East", "East", "North", "a"],
        "pdu_code": ["N1", "N2", "S1", "S1", "S2", "E1", "E1", "N1", "A1"],
        "group": ["Treatment", "Control", "Control", "Early Adopter", "Treatment", "Control",
                  "Control", "Treatment", "Treatment"]})
    got = stratum_group_counts(table, strata)
    assert got == grouped_counts(table, strata)
    assert list(got) == sorted(got) and all(list(row) == sorted(row) for row in got.values())
    from evalkit.allocation.assign import _counts_and_totals

    totals = _counts_and_totals(table, strata)["totals"]
    expected = {g: int(n) for g, n in table["group"].value_counts().sort_index().items()}
    assert totals == expected and list(totals) == list(expected)

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

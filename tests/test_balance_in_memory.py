"""The balance table from frames in memory equals the one recomputed from the register."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from evalkit.allocation.assign import compute_assignment
from evalkit.allocation.exports import balance_from_register
from evalkit.register import Register

SEEDS2_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "seeds2.toml"


def test_balance_from_units_in_memory_matches_the_register(national_run, example_files):
    register = Register.open(national_run.directory)
    _, _, units, _ = compute_assignment(SEEDS2_CONFIG, example_files["pdus"],
                                        example_files["staff"])
    from_register = balance_from_register(register)
    aligned = balance_from_register(register, units=units)
    shuffled = balance_from_register(register, units=units.sample(frac=1, random_state=3))
    pd.testing.assert_frame_equal(aligned, from_register)
    pd.testing.assert_frame_equal(shuffled, from_register)
    assert aligned.to_csv(index=False) == from_register.to_csv(index=False)
    assert len(from_register) == 3 and from_register["units"].sum() == len(units)

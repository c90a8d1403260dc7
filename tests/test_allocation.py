"""Allocation from rosters: fixed units, exclusions, row-order invariance, probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.allocation.allocate import allocate, build_units
from evalkit.allocation.roster import load_roster
from evalkit.errors import ConfigError
from evalkit.trial.design import load_design
from tests.helpers import small_pdus, small_staff, write_trial


def allocation_for(design_path):
    design = load_design(design_path)
    roster = load_roster(design, design_path.parent / "pdus.csv", design_path.parent / "staff.csv")
    units = build_units(design, roster)
    return design, allocate(design, units)


def test_fixed_units_go_to_their_arm_with_probability_one(tmp_path):
    design, allocation = allocation_for(write_trial(tmp_path, fixed='["Town 0-0", "P101"]'))
    table = allocation.table.set_index("unit_id")
    for unit in ["P000", "P101"]:
        assert table.at[unit, "group"] == "Early Adopter"
        assert table.at[unit, "assignment"] == "fixed"
        assert table.at[unit, "p_early_adopter"] == 1.0
        assert table.at[unit, "p_treatment"] == 0.0
    random = table[table["assignment"] == "random"]
    assert set(random["group"]) == {"Treatment", "Control"}
    assert np.allclose(random["p_treatment"], 0.5) and np.allclose(random["p_control"], 0.5)


def test_unequal_ratio_probabilities_are_the_ratio_shares(tmp_path):
    _, allocation = allocation_for(write_trial(tmp_path, treatment_ratio=2, fixed="[]"))
    assert np.allclose(allocation.table["p_treatment"], 2 / 3)
    assert np.allclose(allocation.table["p_control"], 1 / 3)
    counts = allocation.table.groupby("region")["group"].value_counts().unstack()
    assert counts["Treatment"].between(3, 4).all()          # 5 units, target 10/3


@settings(max_examples=15, deadline=None)
@given(order_seed=st.integers(0, 10_000))
def test_row_order_never_changes_the_allocation(tmp_path_factory, order_seed):
    folder = tmp_path_factory.mktemp("order")
    pdus = small_pdus(4, 6)
    staff = small_staff(pdus)
    reference = allocation_for(write_trial(folder / "a", pdus=pdus, staff=staff))[1].table
    shuffled = pdus.sample(frac=1, random_state=order_seed)
    shuffled = shuffled[list(reversed(shuffled.columns))]
    again = allocation_for(write_trial(folder / "b", pdus=shuffled, staff=staff))[1].table
    pd.testing.assert_frame_equal(
        reference.sort_values("unit_id").reset_index(drop=True)[["unit_id", "group"]],
        again.sort_values("unit_id").reset_index(drop=True)[["unit_id", "group"]],
    )


def test_excluded_units_are_left_out(tmp_path):
    design_path = write_trial(tmp_path, extra_trial='exclude = ["Town 2-4"]')
    _, allocation = allocation_for(design_path)
    assert "P204" not in set(allocation.table["unit_id"])
    assert len(allocation.table) == 14


def test_staff_level_design_randomises_individuals_within_strata(tmp_path):
    pdus = small_pdus(2, 3)
    staff = small_staff(pdus, per_pdu=7)
    design_path = write_trial(tmp_path, unit="staff", strata='["region", "pdu_code"]',
                              fixed="[]", pdus=pdus, staff=staff)
    _, allocation = allocation_for(design_path)
    table = allocation.table
    assert len(table) == len(staff)
    per_pdu = table.groupby("pdu_code")["group"].value_counts().unstack()
    assert per_pdu.min().min() >= 3 and per_pdu.max().max() <= 4     # 7 staff, target 3.5
    totals = table["group"].value_counts()
    assert abs(totals["Treatment"] - totals["Control"]) <= 1


def test_rerandomisation_accepts_a_balanced_draw_and_simulates_probabilities(tmp_path):
    extra = ('[randomisation]\nmethod = "rerandomise"\nbalance_covariates = ["headcount"]\n'
             "max_abs_smd = 0.1\nmax_draws = 20000\nprobability_draws = 400")
    design_path = write_trial(tmp_path, extra=extra, fixed="[]")
    _, allocation = allocation_for(design_path)
    assert allocation.method == "rerandomise"
    assert allocation.accepted_balance["accepted_value"] <= 0.1
    assert allocation.draws_tried >= 1
    assert allocation.probability_draws == 400
    assert 0 < allocation.probability_mc_se < 0.05
    assert np.allclose(allocation.table[["p_treatment", "p_control"]].sum(axis=1), 1.0)


def test_impossible_balance_rule_fails_clearly(tmp_path):
    extra = ('[randomisation]\nmethod = "rerandomise"\nbalance_covariates = ["noise"]\n'
             "max_abs_smd = 0.0000001\nmax_draws = 50")
    pdus = small_pdus().assign(noise=lambda f: np.sqrt(np.arange(len(f)) + 2.0))
    design_path = write_trial(tmp_path, fixed="[]", extra=extra, pdus=pdus)
    with pytest.raises(ConfigError, match="max_draws"):
        allocation_for(design_path)


def test_mahalanobis_rule_accepts_only_draws_within_its_quantile(tmp_path):
    from scipy import stats

    extra = ('[randomisation]\nmethod = "rerandomise"\n'
             'balance_covariates = ["headcount", "caseload_per_practitioner"]\n'
             "mahalanobis_acceptance = 0.2\nmax_draws = 20000\nprobability_draws = 300")
    _, allocation = allocation_for(write_trial(tmp_path, fixed="[]", extra=extra))
    limit = stats.chi2.ppf(0.2, 2)
    assert allocation.accepted_balance["rule"] == "mahalanobis"
    assert allocation.accepted_balance["limit"] == pytest.approx(limit)
    assert allocation.accepted_balance["accepted_value"] <= limit

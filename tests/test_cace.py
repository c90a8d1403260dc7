"""CACE by 2SLS with CR2 errors: against estimatr::iv_robust and by behaviour."""

from __future__ import annotations

import pandas as pd
import pytest

from evalkit.analysis.data import AnalysisColumns
from evalkit.analysis.iv import fit_cace
from evalkit.analysis.ols import fit_ols_cr
from tests.reference_data import DATASETS, assert_contrast_matches, reference_numbers
from tests.reference_data import load_dataset as load


@pytest.fixture(scope="module")
def reference() -> dict:
    return reference_numbers()


def cace(frame: pd.DataFrame, **kwargs):
    return fit_cace(frame, AnalysisColumns("y", "arm", "pdu", "region", ("x1",)),
                    compliance="completed", **kwargs)


@pytest.mark.parametrize("name", DATASETS)
def test_matches_iv_robust_cr2(name, reference):
    result = cace(load(name))
    expected = reference[name]["iv_cr2"]
    assert {c.arm for c in result.contrasts} == set(expected)
    for contrast in result.contrasts:
        want = expected[contrast.arm]
        assert_contrast_matches(contrast, want)
        assert contrast.extra["n_obs_contrast"] == want["n"]
        assert contrast.extra["n_clusters_contrast"] == want["n_clusters"]


def test_full_compliance_reduces_to_intention_to_treat_regression():
    frame = load("two_arms")
    frame["completed"] = (frame["arm"] == "Treatment").astype(int)
    iv = cace(frame).contrasts[0]
    itt = fit_ols_cr(frame, AnalysisColumns("y", "arm", "pdu", "region", ["x1"])).contrasts[0]
    assert iv.estimate == pytest.approx(itt.estimate, rel=1e-9)
    assert iv.se == pytest.approx(itt.se, rel=1e-9)
    assert iv.df == pytest.approx(itt.df, rel=1e-9)


def test_cace_is_itt_scaled_by_compliance_difference_without_covariates():
    frame = load("two_arms")
    iv = fit_cace(frame, AnalysisColumns("y", "arm", "pdu"), compliance="completed").contrasts[0]
    by_arm = frame.groupby("arm")[["y", "completed"]].mean()
    wald = ((by_arm.loc["Treatment", "y"] - by_arm.loc["Control", "y"])
            / (by_arm.loc["Treatment", "completed"] - by_arm.loc["Control", "completed"]))
    assert iv.estimate == pytest.approx(wald, rel=1e-9)


def test_first_stage_f_is_squared_cr2_t_of_arm_on_compliance():
    frame = load("unequal")
    result = cace(frame)
    for arm, first_stage in result.diagnostics["first_stage"].items():
        subset = frame[frame["arm"].isin([arm, "Control"])]
        ols = fit_ols_cr(subset,
                         AnalysisColumns("completed", "arm", "pdu", "region", ["x1"])).contrasts[0]
        assert first_stage["statistic"] == pytest.approx(ols.statistic**2, rel=1e-9)
        assert first_stage["df_denom"] == subset["pdu"].nunique() - 1


def test_compliance_rates_and_dropped_rows():
    frame = load("missing")
    result = cace(frame)
    complete = frame[["y", "x1"]].notna().all(axis=1)
    rates = frame[complete].groupby("arm")["completed"].mean()
    for arm, per_arm in result.diagnostics["compliance_rates"].items():
        assert per_arm[arm] == pytest.approx(rates[arm])
        assert per_arm["Control"] == pytest.approx(rates["Control"])
        in_pair = frame["arm"].isin([arm, "Control"])
        assert result.n_dropped[arm] == int((in_pair & ~complete).sum())
    assert result.n_obs == int(complete.sum())


def test_non_randomised_arms_are_flagged():
    result = cace(load("unequal"), non_randomised_arms=["Early Adopter"])
    assert {c.arm: c.randomised for c in result.contrasts} == {
        "Early Adopter": False, "Treatment": True}

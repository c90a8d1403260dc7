"""Synthetic outcomes: deterministic, known effects recoverable, ICC, differential missingness."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from evalkit.analysis.data import AnalysisColumns
from evalkit.analysis.effect_sizes import icc_estimate
from evalkit.analysis.ols import fit_ols_cr
from evalkit.cli import app
from evalkit.examples.outcomes import COMPLETER_EFFECT, COMPLETION, make_example_outcomes
from evalkit.register import Register


@pytest.fixture(scope="module")
def staff(national_run) -> pd.DataFrame:
    return Register.open(national_run.directory).table("staff_allocation")


@pytest.fixture(scope="module")
def joined(staff) -> pd.DataFrame:
    outcomes = make_example_outcomes(staff)
    return staff.merge(outcomes, on="staff_id")


def test_deterministic_and_seeded(staff):
    first, again = make_example_outcomes(staff), make_example_outcomes(staff)
    pd.testing.assert_frame_equal(first, again)
    other = make_example_outcomes(staff, seed=7)
    assert not first["supervision_quality"].equals(other["supervision_quality"])


def test_one_row_per_trial_staff_member(staff, joined):
    in_trial = staff[staff["group"].isin(COMPLETION)]
    assert len(joined) == len(in_trial)
    assert joined["staff_id"].is_unique


def test_more_missing_in_control_and_two_lost_pdus(joined):
    missing = joined["supervision_quality"].isna().groupby(joined["group"]).mean()
    assert missing["Control"] > missing["Treatment"] + 0.04
    all_missing = joined.groupby("pdu_code")["supervision_quality"].apply(
        lambda s: s.isna().all())
    lost = all_missing[all_missing].index
    assert len(lost) == 2
    assert set(joined.loc[joined["pdu_code"].isin(lost), "group"]) == {"Treatment", "Control"}
    assert joined["baseline_score"].notna().all()


def test_icc_in_range_and_itt_effect_covered(joined):
    icc = icc_estimate(joined, "supervision_quality", "pdu_code")["icc"]
    assert 0.05 <= icc <= 0.15
    true_itt = COMPLETER_EFFECT["supervision_quality"] * (
        COMPLETION["Treatment"] - COMPLETION["Control"])
    two_arm = joined[joined["group"].isin(["Treatment", "Control"])]
    fit = fit_ols_cr(two_arm, AnalysisColumns("supervision_quality", "group", "pdu_code",
                                              "region", ("baseline_score",)))
    contrast = fit.contrasts[0]
    assert contrast.ci_low < true_itt < contrast.ci_high


def test_example_command_writes_outcomes(national_run, tmp_path):
    result = CliRunner().invoke(app, ["example", str(tmp_path),
                                      "--outcomes-for", str(national_run.directory)])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(tmp_path / "outcomes.csv")
    assert {"staff_id", "supervision_quality", "retained", "sickness_days", "baseline_score",
            "completed"} <= set(written.columns)
    assert set(written["retained"].dropna().unique()) <= {0, 1}
    assert (written["sickness_days"].dropna() >= 0).all()

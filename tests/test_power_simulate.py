"""Simulated power of the exact design: its CR2 equals the analysis stage's, it agrees with
the analytic formula where that holds, unequal PDU sizes cost power, type I error is alpha."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evalkit.analysis.data import AnalysisColumns
from evalkit.analysis.mixed import fit_mixed
from evalkit.analysis.ols import fit_ols_cr
from evalkit.power.analytic import Arms, Assumptions, analyse
from evalkit.power.job import SimulationRequest, simulate_design
from evalkit.power.mixed_means import fit_mixed_means
from evalkit.power.simulate import cr2_fit
from tests.helpers import small_pdus, small_staff, write_trial

REPLICATES = 600


COLUMNS = AnalysisColumns(outcome="y", strata="region", covariates=("z",), control="C")


def _staff_rows(seed: int, pdu_sd: float) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """14 PDUs of unequal size in 3 regions, arms T/C/E, a PDU covariate z."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 12, 14)
    strata = np.repeat([0, 1, 2], [5, 5, 4])
    arms = np.array(["T", "C", "E"] * 5)[:14]
    z = rng.standard_normal(14)
    pdu_effect = pdu_sd * rng.standard_normal(14)
    rows = [{"y": rng.standard_normal() + 0.3 * (arms[j] == "T") + 0.5 * z[j] + pdu_effect[j],
             "arm": arms[j], "pdu": f"p{j}", "region": f"r{strata[j]}", "z": z[j]}
            for j in range(14) for _ in range(sizes[j])]
    x = np.column_stack([np.ones(14), arms == "E", arms == "T", strata == 1, strata == 2, z])
    return pd.DataFrame(rows), x.astype(float)[None], sizes.astype(float)


def test_vectorised_cr2_equals_the_analysis_stage_cr2_on_staff_rows():
    staff, x, sizes = _staff_rows(3, 0.5)
    expected = fit_ols_cr(staff, COLUMNS)
    means = staff.groupby("pdu", sort=False)["y"].mean().to_numpy()
    estimates, errors, dfs = cr2_fit(x, [means[None]], sizes, [1, 2])
    for index, contrast in enumerate(expected.contrasts):
        assert estimates[0, index, 0] == pytest.approx(contrast.estimate, rel=1e-9)
        assert errors[0, index, 0] == pytest.approx(contrast.se, rel=1e-9)
        assert dfs[index, 0] == pytest.approx(contrast.df, rel=1e-9)


@pytest.mark.parametrize("seed, pdu_sd", [(1, 0.5), (2, 0.5), (3, 0.02)])
def test_mixed_model_from_pdu_summaries_equals_the_analysis_stage_mixed_model(seed, pdu_sd):
    staff, x, sizes = _staff_rows(seed, pdu_sd)
    expected = fit_mixed(staff, COLUMNS)
    grouped = staff.groupby("pdu", sort=False)["y"]
    within = float(((staff["y"] - grouped.transform("mean")) ** 2).sum())
    estimates, errors, dfs = fit_mixed_means(x, grouped.mean().to_numpy()[None], sizes,
                                             np.array([within]), [1, 2])
    for index, contrast in enumerate(expected.contrasts):
        assert estimates[index, 0] == pytest.approx(contrast.estimate, rel=1e-6)
        assert errors[index, 0] == pytest.approx(contrast.se, rel=1e-5)
        assert dfs[index, 0] == pytest.approx(contrast.df, rel=1e-4)


def _balanced_trial(folder, staff_counts=None):
    pdus = small_pdus(n_regions=4, per_region=6)
    staff = small_staff(pdus, per_pdu=12)
    if staff_counts is not None:  # the same mean PDU size, unequal sizes
        staff = pd.concat([small_staff(pdus[pdus["pdu_code"] == code], per_pdu=int(n))
                           for code, n in zip(pdus["pdu_code"], staff_counts, strict=True)])
    return write_trial(folder, fixed="[]", pdus=pdus, staff=staff)


def _simulate(design, effect, workers=1, analysis="cr2"):
    assumptions = Assumptions(icc=0.10)
    request = SimulationRequest(replicates=REPLICATES, effect=effect, workers=workers, seed=11,
                                analyses=(analysis,))
    return simulate_design(design, assumptions, request).simulation["contrasts"][0]


@pytest.mark.slow
def test_simulated_power_and_type_i_error_agree_with_theory_on_a_balanced_design(tmp_path):
    design = _balanced_trial(tmp_path / "balanced")
    analytic = analyse("bcra3f2", Arms.balanced(6, 12, blocks=4), Assumptions(icc=0.10))
    simulated = _simulate(design, analytic.mdes, workers=2)
    mc_error = math.sqrt(0.8 * 0.2 / REPLICATES)
    # the analytic df (K(J - 2) = 16) is a little below CR2's (about 19): allow for both
    assert abs(simulated["power"] - 0.80) < 3 * mc_error + 0.02
    assert abs(simulated["type_i_error"] - 0.05) < 3 * math.sqrt(0.05 * 0.95 / REPLICATES)
    assert abs(simulated["bias"]) < 3 * simulated["bias_mc_se"]
    assert abs(simulated["coverage"] - 0.95) < 3 * math.sqrt(0.05 * 0.95 / REPLICATES)
    assert simulated == _simulate(design, analytic.mdes, workers=1)  # same for any workers
    mixed = _simulate(design, analytic.mdes, analysis="mixed")
    assert abs(mixed["power"] - 0.80) < 3 * mc_error + 0.02
    assert abs(mixed["type_i_error"] - 0.05) < 3 * math.sqrt(0.05 * 0.95 / REPLICATES)


@pytest.mark.slow
def test_unequal_pdu_sizes_lower_simulated_and_analytic_power(tmp_path):
    equal = _balanced_trial(tmp_path / "equal")
    counts = np.tile([3, 5, 8, 14, 18, 24], 4)  # mean 12, CV about 0.6
    unequal = _balanced_trial(tmp_path / "unequal", staff_counts=counts)
    effect = 0.45
    assert _simulate(unequal, effect)["power"] < _simulate(equal, effect)["power"] - 0.03
    arms = Arms.balanced(6, 12, blocks=4)
    cv = float(counts.std() / counts.mean())
    assert (analyse("bcra3f2", arms, Assumptions(icc=0.1, size_cv=cv), effect).power
            < analyse("bcra3f2", arms, Assumptions(icc=0.1), effect).power)

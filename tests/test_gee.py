"""GEE against geepack (tests/reference/reference.json) and behavioural checks."""

from __future__ import annotations

import math

import pytest

from evalkit.analysis.data import AnalysisColumns, AnalysisInputError
from evalkit.analysis.gee import GEEConvergenceError, fit_gee
from tests.reference_data import DATASETS as ALL_DATASETS
from tests.reference_data import load_dataset as load
from tests.reference_data import reference_numbers

SLOW = {"national", "unequal"}  # ~2 s per fit on two cores
DATASETS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
            for n in ALL_DATASETS]
FAMILIES = [("binomial", "y_bin", "gee_binomial"), ("poisson", "y_count", "gee_poisson")]
# geepack and statsmodels agree to ~1e-10 once statsmodels uses geepack's moment
# estimators (ddof_scale=0) and tolerance; 1e-6 leaves room for BLAS/platform noise.
RTOL = 1e-6


@pytest.fixture(scope="module")
def reference():
    return reference_numbers()


def gee(df, outcome, **kwargs):
    return fit_gee(df, AnalysisColumns(outcome, "arm", "pdu", "region", ("x1",)), **kwargs)


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize(("family", "outcome", "key"), FAMILIES)
def test_estimates_and_robust_se_match_geepack(reference, name, family, outcome, key):
    expected = reference[name][key]
    result = gee(load(name), outcome, family=family)
    assert result.n_obs == expected["n"] and result.n_clusters == expected["n_clusters"]
    assert {c.arm for c in result.contrasts} == set(expected["arms"])
    for contrast in result.contrasts:
        arm = expected["arms"][contrast.arm]
        assert contrast.estimate == pytest.approx(arm["estimate"], rel=RTOL)
        assert contrast.se == pytest.approx(arm["se"], rel=RTOL)
    assert result.diagnostics["correlation"] == pytest.approx(expected["alpha"], rel=RTOL)
    assert result.diagnostics["scale"] == pytest.approx(expected["scale"], rel=RTOL)
    assert result.diagnostics["converged"] is expected["converged"] is True


@pytest.mark.parametrize("name", DATASETS)
def test_mancl_derouen_se_matches_reference(reference, name):
    expected = reference[name]["gee_binomial_md"]
    result = gee(load(name), "y_bin", small_sample="mancl-derouen")
    n_params = len(result.diagnostics["coefficients"])
    for contrast in result.contrasts:
        assert contrast.se == pytest.approx(expected["arms"][contrast.arm]["se"], rel=RTOL)
        assert contrast.df == result.n_clusters - n_params


def test_mancl_derouen_uses_t_and_is_more_conservative():
    df = load("few_clusters")
    robust = gee(df, "y_bin").contrasts[0]
    corrected = gee(df, "y_bin", small_sample="mancl-derouen").contrasts[0]
    assert corrected.estimate == pytest.approx(robust.estimate, rel=1e-12)
    assert corrected.se > robust.se
    assert robust.df is None and corrected.df is not None
    assert corrected.p_value > robust.p_value
    half_width = corrected.ci_high - corrected.estimate
    assert half_width > 1.96 * corrected.se  # t quantile on few df exceeds the normal one


def test_exponentiated_scale_and_labels():
    df = load("two_arms")
    result = gee(df, "y_count", family="poisson", non_randomised_arms=["Treatment"])
    contrast = result.contrasts[0]
    assert contrast.extra["ratio"] == "rate ratio"
    assert contrast.extra["exp_estimate"] == pytest.approx(math.exp(contrast.estimate))
    assert contrast.extra["exp_ci_low"] == pytest.approx(math.exp(contrast.ci_low))
    assert contrast.extra["exp_ci_high"] == pytest.approx(math.exp(contrast.ci_high))
    assert contrast.randomised is False
    assert result.model == "gee" and result.diagnostics["link"] == "log"
    assert "exp_estimate" in result.to_frame().columns


def test_joint_test_reduces_to_squared_z_with_one_arm():
    contrast_result = gee(load("two_arms"), "y_bin")
    joint = contrast_result.joint_test
    assert joint["df"] == 1
    assert joint["statistic"] == pytest.approx(contrast_result.contrasts[0].statistic ** 2)
    assert joint["p_value"] == pytest.approx(contrast_result.contrasts[0].p_value)


def test_non_convergence_fails_loudly():
    with pytest.raises(GEEConvergenceError, match="did not converge"):
        gee(load("few_clusters"), "y_bin", maxiter=1)


def test_rejects_non_binary_outcome_and_unknown_options():
    df = load("few_clusters")
    with pytest.raises(AnalysisInputError, match="0/1"):
        gee(df, "y_count", family="binomial")
    with pytest.raises(AnalysisInputError, match="family"):
        gee(df, "y_bin", family="gaussian")
    with pytest.raises(AnalysisInputError, match="small_sample"):
        gee(df, "y_bin", small_sample="kauermann-carroll")

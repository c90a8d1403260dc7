"""OLS with CR2 / CR1S errors and HTZ test: against R (clubSandwich, estimatr) and behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from evalkit.analysis import cluster_robust as cr
from evalkit.analysis.data import AnalysisColumns, AnalysisInputError
from evalkit.analysis.ols import fit_ols_cr
from tests.reference_data import DATASETS, reference_numbers
from tests.reference_data import load_dataset as load

EST_TOL, DF_TOL = 1e-4, 1e-3


@pytest.fixture(scope="module")
def reference() -> dict:
    return reference_numbers()


def fit(frame: pd.DataFrame, **kwargs):
    return fit_ols_cr(frame, AnalysisColumns("y", "arm", "pdu", "region", ["x1"]), **kwargs)


@pytest.mark.parametrize("name", DATASETS)
def test_cr2_matches_clubsandwich(name, reference):
    result = fit(load(name))
    expected = reference[name]["cr2"]
    assert result.n_obs == expected["n"]
    assert result.n_clusters == expected["n_clusters"]
    assert {c.arm for c in result.contrasts} == set(expected["arms"])
    for contrast in result.contrasts:
        want = expected["arms"][contrast.arm]
        assert contrast.estimate == pytest.approx(want["estimate"], rel=EST_TOL)
        assert contrast.se == pytest.approx(want["se"], rel=EST_TOL)
        assert contrast.df == pytest.approx(want["df"], rel=DF_TOL)
        assert contrast.p_value == pytest.approx(want["p_value"], rel=DF_TOL)


@pytest.mark.parametrize("name", DATASETS)
def test_cr2_matches_estimatr_lm_robust(name, reference):
    result = fit(load(name))
    for contrast in result.contrasts:
        want = reference[name]["lm_cr2_estimatr"]["arms"][contrast.arm]
        assert contrast.se == pytest.approx(want["se"], rel=EST_TOL)
        assert contrast.df == pytest.approx(want["df"], rel=DF_TOL)


@pytest.mark.parametrize("name", DATASETS)
def test_htz_matches_clubsandwich(name, reference):
    joint = fit(load(name)).joint_test
    want = reference[name]["cr2"]["htz"]
    assert joint["test"] == "HTZ"
    assert joint["df_num"] == want["df_num"]
    assert joint["statistic"] == pytest.approx(want["Fstat"], rel=DF_TOL)
    assert joint["df_denom"] == pytest.approx(want["df_denom"], rel=DF_TOL)
    assert joint["p_value"] == pytest.approx(want["p_val"], rel=DF_TOL)


@pytest.mark.parametrize("name", DATASETS)
def test_cr1s_matches_clubsandwich_and_df_is_clusters_minus_one(name, reference):
    result = fit(load(name), vcov="CR1")
    assert result.model == "cr1"
    assert result.joint_test["test"] == "naive-F"
    for contrast in result.contrasts:
        want = reference[name]["cr1"]["arms"][contrast.arm]
        assert contrast.se == pytest.approx(want["se"], rel=EST_TOL)
        assert contrast.df == result.n_clusters - 1 == want["df"]
        assert contrast.p_value == pytest.approx(want["p_value"], rel=DF_TOL)


def test_missing_outcome_rows_are_dropped_and_counted():
    frame = load("missing")
    result = fit(frame)
    incomplete = frame[["y", "x1"]].isna().any(axis=1)
    assert incomplete.any()
    assert result.n_dropped == int(incomplete.sum())
    assert result.n_obs == int((~incomplete).sum())


def test_strata_labels_with_commas_do_not_change_results():
    frame = load("two_arms")
    relabelled = frame.assign(region="Region, " + frame["region"] + ", with commas")
    before, after = fit(frame), fit(relabelled)
    assert after.contrasts[0].estimate == pytest.approx(before.contrasts[0].estimate, rel=1e-10)
    assert after.contrasts[0].se == pytest.approx(before.contrasts[0].se, rel=1e-10)
    assert after.contrasts[0].df == pytest.approx(before.contrasts[0].df, rel=1e-10)


def test_row_order_does_not_matter():
    frame = load("unequal")
    shuffled = frame.sample(frac=1.0, random_state=3)
    for a, b in zip(fit(frame).contrasts, fit(shuffled).contrasts, strict=True):
        assert b.se == pytest.approx(a.se, rel=1e-9)
        assert b.df == pytest.approx(a.df, rel=1e-9)


def test_non_randomised_arms_are_flagged():
    result = fit(load("national"), non_randomised_arms=["Early Adopter"])
    flags = {c.arm: c.randomised for c in result.contrasts}
    assert flags == {"Early Adopter": False, "Treatment": True}


def test_single_constraint_htz_is_squared_t_with_satterthwaite_df():
    result = fit(load("two_arms"))
    contrast = result.contrasts[0]
    assert result.joint_test["statistic"] == pytest.approx(contrast.statistic**2, rel=1e-10)
    assert result.joint_test["df_denom"] == pytest.approx(contrast.df, rel=1e-10)


def test_cr2_with_singleton_clusters_equals_hc2():
    rng = np.random.default_rng(7)
    X = np.column_stack([np.ones(40), rng.normal(size=(40, 2))])
    y = X @ [1.0, 0.5, -0.2] + rng.normal(size=40) * (1 + np.abs(X[:, 1]))
    bread = cr.bread_matrix(X)
    residuals = y - X @ (bread @ X.T @ y)
    ours = cr.sandwich(cr.cr2_pieces(X, residuals, np.arange(40), bread))
    hc2 = sm.OLS(y, X).fit(cov_type="HC2").cov_params()
    np.testing.assert_allclose(ours, hc2, rtol=1e-10)


def _dense_cr2(X, y, cluster, contrast):
    """Direct n x n implementation of CR2 and its Satterthwaite df, for checking."""
    n = len(y)
    bread = np.linalg.inv(X.T @ X)
    residual_maker = np.eye(n) - X @ bread @ X.T
    e = residual_maker @ y
    g_vectors = np.zeros((n, cluster.max() + 1))
    meat = np.zeros((X.shape[1], X.shape[1]))
    for j in range(cluster.max() + 1):
        rows = np.flatnonzero(cluster == j)
        vals, vecs = np.linalg.eigh(residual_maker[np.ix_(rows, rows)])
        adjust = vecs @ np.diag(np.where(vals > 1e-12, vals, np.inf) ** -0.5) @ vecs.T
        score = X[rows].T @ adjust @ e[rows]
        meat += np.outer(score, score)
        g_vectors[rows, j] = adjust @ X[rows] @ bread @ contrast
    omega = g_vectors.T @ residual_maker @ g_vectors
    return bread @ meat @ bread, np.trace(omega) ** 2 / np.sum(omega**2)


def test_blockwise_cr2_equals_dense_formula():
    rng = np.random.default_rng(11)
    cluster = np.repeat(np.arange(9), rng.integers(2, 8, size=9))
    n = len(cluster)
    treated = (cluster % 2 == 0).astype(float)
    X = np.column_stack([np.ones(n), treated, rng.normal(size=n)])
    y = 0.3 * treated + rng.normal(size=n) + rng.normal(size=9)[cluster]
    contrast = np.array([0.0, 1.0, 0.0])
    bread = cr.bread_matrix(X)
    pieces = cr.cr2_pieces(X, y - X @ (bread @ X.T @ y), cluster, bread)
    vcov, df = _dense_cr2(X, y, cluster, contrast)
    np.testing.assert_allclose(cr.sandwich(pieces), vcov, rtol=1e-9)
    assert cr.satterthwaite_df(pieces, contrast) == pytest.approx(df, rel=1e-9)


def test_unknown_vcov_type_is_rejected():
    with pytest.raises(AnalysisInputError):
        fit(load("few_clusters"), vcov="CR3")


def test_collinear_covariate_is_dropped_like_r_and_reported():
    frame = load("few_clusters").assign(x1_twice=lambda d: 2 * d["x1"])
    base = fit_ols_cr(frame, AnalysisColumns("y", "arm", "pdu", "region", ["x1"]))
    both = fit_ols_cr(frame, AnalysisColumns("y", "arm", "pdu", "region", ["x1", "x1_twice"]))
    assert both.diagnostics["aliased_columns"] == ["x1_twice"]
    assert both.contrasts[0].se == pytest.approx(base.contrasts[0].se, rel=1e-10)
    assert both.contrasts[0].df == pytest.approx(base.contrasts[0].df, rel=1e-10)

"""Mixed model (REML random intercept, Satterthwaite df) against lmerTest, plus its guards."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evalkit.analysis import mixed
from evalkit.analysis.data import AnalysisColumns
from evalkit.analysis.mixed import ModelFitError, fit_mixed
from tests.reference_data import load_dataset as load
from tests.reference_data import reference_numbers

REFERENCE = reference_numbers()
MIXED_DATASETS = [name for name, entry in REFERENCE.items()
                  if isinstance(entry, dict) and "mixed" in entry]


@pytest.fixture(scope="module")
def fitted() -> dict:
    """Each reference dataset fitted once: y ~ arm + region + x1 + (1 | pdu)."""
    cache: dict = {}

    def get(name: str, **kwargs):
        key = (name, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = fit_mixed(load(name), AnalysisColumns("y", "arm", "pdu", "region", ["x1"]),
                                   **kwargs)
        return cache[key]

    return get


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("name", MIXED_DATASETS)
def test_contrasts_match_lmertest_satterthwaite(fitted, name):
    expected = REFERENCE[name]["mixed"]
    result = fitted(name)
    assert result.n_obs == expected["n"]
    assert result.n_clusters == expected["n_clusters"]
    assert sorted(c.arm for c in result.contrasts) == sorted(expected["arms"])
    for contrast in result.contrasts:
        ref = expected["arms"][contrast.arm]
        assert rel(contrast.estimate, ref["estimate"]) < 1e-4
        assert rel(contrast.se, ref["se"]) < 1e-4
        assert rel(contrast.df, ref["df"]) < 1e-3
        assert rel(contrast.statistic, ref["statistic"]) < 1e-4
        assert contrast.p_value == pytest.approx(ref["p_value"], rel=1e-3, abs=1e-12)
        assert contrast.versus == "Control"


KR_DATASETS = [name for name in MIXED_DATASETS if "mixed_kr" in REFERENCE[name]]


@pytest.mark.parametrize("name", KR_DATASETS)
def test_kenward_roger_matches_pbkrtest(fitted, name):
    expected = REFERENCE[name]["mixed_kr"]
    result = fitted(name, ddf="kenward-roger")
    assert result.diagnostics["df_method"].startswith("Kenward-Roger")
    for contrast in result.contrasts:
        ref = expected["arms"][contrast.arm]
        assert rel(contrast.estimate, ref["estimate"]) < 1e-4
        assert rel(contrast.se, ref["se"]) < 1e-4
        assert rel(contrast.df, ref["df"]) < 1e-3


def test_unknown_ddf_is_rejected():
    with pytest.raises(ValueError, match="ddf"):
        fit_mixed(load("few_clusters"), AnalysisColumns("y", "arm", "pdu"), ddf="containment")


@pytest.mark.parametrize("name", MIXED_DATASETS)
def test_variance_components_and_loglik_match_lme4(fitted, name):
    expected = REFERENCE[name]["mixed"]
    diagnostics = fitted(name).diagnostics
    assert rel(diagnostics["sigma2_cluster"], expected["sigma2_cluster"]) < 1e-4
    assert rel(diagnostics["sigma2_resid"], expected["sigma2_resid"]) < 1e-4
    assert diagnostics["reml_loglik"] == pytest.approx(expected["reml_loglik"], abs=1e-4)
    icc = expected["sigma2_cluster"] / (expected["sigma2_cluster"] + expected["sigma2_resid"])
    assert rel(fitted(name).icc, icc) < 1e-4


@pytest.mark.parametrize("name", MIXED_DATASETS)
def test_joint_test_is_consistent_with_the_contrasts(fitted, name):
    result = fitted(name)
    joint = result.joint_test
    assert joint["df_num"] == len(result.contrasts)
    if len(result.contrasts) == 1:   # contestMD reduces to the t test
        only = result.contrasts[0]
        assert joint["statistic"] == pytest.approx(only.statistic**2, rel=1e-10)
        assert joint["df_denom"] == pytest.approx(only.df, rel=1e-10)
    else:
        assert 2 <= joint["df_denom"] <= max(c.df for c in result.contrasts) + 1e-9
    reference_joint = REFERENCE[name]["mixed"].get("joint")
    if reference_joint:   # lmerTest anova(fit)["arm", ] when the fixture provides it
        assert rel(joint["statistic"], reference_joint["F"]) < 1e-4
        assert rel(joint["df_denom"], reference_joint["df_denom"]) < 1e-3


def test_non_randomised_arm_is_labelled(fitted):
    with_adopters = [n for n in MIXED_DATASETS if "Early Adopter" in REFERENCE[n]["mixed"]["arms"]]
    name = min(with_adopters, key=lambda n: REFERENCE[n]["mixed"]["n"])
    result = fitted(name, non_randomised_arms=("Early Adopter",))
    labels = {c.arm: c.randomised for c in result.contrasts}
    assert labels == {"Early Adopter": False, "Treatment": True}
    assert any("Early Adopter" in w and "not randomised" in w
               for w in result.diagnostics["warnings"])
    assert result.to_frame().set_index("arm").loc["Early Adopter", "randomised"] == False  # noqa: E712


def test_missing_outcomes_are_dropped_and_counted(fitted):
    data = load("missing")
    incomplete = data[["y", "arm", "pdu", "region", "x1"]].isna().any(axis=1)
    assert incomplete.any()
    result = fitted("missing")
    assert result.n_dropped == int(incomplete.sum())
    assert result.n_obs == int((~incomplete).sum())


def singular_data(seed: int = 3) -> pd.DataFrame:
    """Every cluster holds a permutation of the same values: no between-cluster variance."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=15)
    rows = []
    for cluster in range(10):
        arm = "Treatment" if cluster % 2 else "Control"
        for value in rng.permutation(base):
            rows.append({"pdu": f"P{cluster}", "arm": arm,
                         "y": value + (0.4 if arm == "Treatment" else 0.0)})
    return pd.DataFrame(rows)


def test_singular_fit_is_reported_and_reduces_to_ols():
    data = singular_data()
    result = fit_mixed(data, AnalysisColumns("y", "arm", "pdu"))
    assert result.diagnostics["singular"] is True
    assert any("singular" in w for w in result.diagnostics["warnings"])
    assert result.icc == pytest.approx(0.0, abs=1e-8)
    # With no cluster variance the model is OLS: estimate = difference in means,
    # se from the pooled residual variance, df = n - p.
    treated = data.loc[data.arm == "Treatment", "y"]
    control = data.loc[data.arm == "Control", "y"]
    pooled = (((treated - treated.mean()) ** 2).sum()
              + ((control - control.mean()) ** 2).sum()) / (len(data) - 2)
    (contrast,) = result.contrasts
    assert contrast.estimate == pytest.approx(treated.mean() - control.mean(), rel=1e-9)
    assert contrast.se == pytest.approx(
        math.sqrt(pooled * (1 / len(treated) + 1 / len(control))), rel=1e-6)
    assert contrast.df == pytest.approx(len(data) - 2, rel=1e-6)


def _broken_run(method: str, p: int) -> mixed.OptimiserRun:
    run = mixed.OptimiserRun(method, math.inf, True, 0.0, 0.7, np.zeros(p))
    run.problems = mixed.check_run(run)
    return run


def test_guard_rejects_fits_with_infinite_loglik(monkeypatch):
    monkeypatch.setattr(mixed, "run_statsmodels",
                        lambda y, X, cluster, method: _broken_run(method, X.shape[1]))
    with pytest.raises(ModelFitError, match="no optimiser gave a sound"):
        fit_mixed(load("few_clusters"), AnalysisColumns("y", "arm", "pdu", "region", ["x1"]))


def test_guard_skips_one_broken_optimiser(monkeypatch):
    real = mixed.run_statsmodels

    def first_one_broken(y, X, cluster, method):
        if method == mixed.OPTIMISERS[0]:
            return _broken_run(method, X.shape[1])
        return real(y, X, cluster, method)

    monkeypatch.setattr(mixed, "run_statsmodels", first_one_broken)
    result = fit_mixed(load("few_clusters"), AnalysisColumns("y", "arm", "pdu", "region", ["x1"]))
    record = result.diagnostics["optimisers"]
    assert result.diagnostics["optimiser"] != mixed.OPTIMISERS[0]
    assert "non-finite REML log-likelihood" in record[mixed.OPTIMISERS[0]]["problems"][0]
    assert len(record) == 3
    expected = REFERENCE["few_clusters"]["mixed"]["arms"]["Treatment"]
    assert rel(result.contrasts[0].estimate, expected["estimate"]) < 1e-4


def test_guard_rejects_disagreeing_optimisers(monkeypatch):
    def disagreeing(y, X, cluster, method):
        offset = mixed.OPTIMISERS.index(method)
        return mixed.OptimiserRun(method, -100.0 - offset, True, 0.1, 0.7,
                                  np.full(X.shape[1], float(offset)))

    monkeypatch.setattr(mixed, "run_statsmodels", disagreeing)
    with pytest.raises(ModelFitError, match="disagree"):
        fit_mixed(load("few_clusters"), AnalysisColumns("y", "arm", "pdu"))


def test_check_run_flags_negative_variance():
    run = mixed.OptimiserRun("nm", -10.0, True, -0.01, 0.7, np.zeros(2))
    assert any("negative" in p for p in mixed.check_run(run))


def test_numerical_hessian_and_jacobian_match_analytic_derivatives():
    def f(v):
        return math.exp(v[0]) * v[1] ** 3 + math.log(v[1]) * v[0] ** 2

    x = np.array([0.3, 1.7])
    a, b = x
    analytic = np.array([
        [math.exp(a) * b**3 + 2 * math.log(b), 3 * math.exp(a) * b**2 + 2 * a / b],
        [3 * math.exp(a) * b**2 + 2 * a / b, 6 * math.exp(a) * b - a**2 / b**2],
    ])
    np.testing.assert_allclose(mixed.numerical_hessian(f, x), analytic, rtol=1e-7)
    jac = mixed.numerical_jacobian(lambda v: np.array([[v[0] * v[1], np.sin(v[1])]]), x)
    np.testing.assert_allclose(jac[0], [[b, 0.0]], atol=1e-9)
    np.testing.assert_allclose(jac[1], [[a, math.cos(b)]], rtol=1e-8)


def test_closed_form_reml_deviance_matches_dense_computation():
    rng = np.random.default_rng(7)
    cluster = np.repeat(np.arange(6), [3, 5, 2, 4, 6, 3])
    X = np.column_stack([np.ones(cluster.size), rng.normal(size=cluster.size)])
    y = rng.normal(size=cluster.size) + rng.normal(size=6)[cluster]
    theta, sigma = 0.8, 1.3
    Z = (cluster[:, None] == np.arange(6)).astype(float)
    V = sigma**2 * (np.eye(cluster.size) + theta**2 * Z @ Z.T)
    V_inv = np.linalg.inv(V)
    M = X.T @ V_inv @ X
    beta = np.linalg.solve(M, X.T @ V_inv @ y)
    r = y - X @ beta
    dense = (np.linalg.slogdet(V)[1] + np.linalg.slogdet(M)[1] + r @ V_inv @ r
             + (cluster.size - 2) * math.log(2 * math.pi))
    sums = mixed.cluster_sums(y, X, cluster)
    assert mixed.reml_deviance(sums, theta, sigma) == pytest.approx(dense, rel=1e-12)
    np.testing.assert_allclose(mixed.gls_pieces(sums, theta, sigma**2).cov_beta,
                               np.linalg.inv(M), rtol=1e-10)

"""Mixed model (REML random intercept, Satterthwaite df) against lmerTest and statsmodels."""

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


def statsmodels_reml(name: str, method: str) -> tuple[float, np.ndarray, float, float]:
    """statsmodels `MixedLM(reml=True)` on a reference dataset: loglik, beta, tau2, sigma2."""
    import statsmodels.api as sm

    from evalkit.analysis.data import build_design
    from evalkit.analysis.ols import independent_columns

    data = build_design(load(name), AnalysisColumns("y", "arm", "pdu", "region", ["x1"]))
    X = data.X[:, independent_columns(data.X)]
    fit = sm.MixedLM(data.y, X, groups=data.cluster).fit(reml=True, method=method)
    return (float(fit.llf), np.asarray(fit.fe_params, float),
            float(np.asarray(fit.cov_re).ravel()[0]), float(fit.scale))


@pytest.mark.parametrize("name", ["national", "few_clusters", "unequal"])
def test_closed_form_optimum_cross_checked_against_statsmodels(fitted, name):
    """The closed-form REML optimum is at least as good as statsmodels' and the same fit."""
    result = fitted(name)
    diagnostics = result.diagnostics
    loglik, beta, tau2, sigma2 = statsmodels_reml(name, "bfgs")
    assert diagnostics["reml_loglik"] >= loglik - 1e-6
    assert diagnostics["reml_loglik"] == pytest.approx(loglik, abs=1e-3)
    ours = np.array(list(diagnostics["coefficients"].values()))
    np.testing.assert_allclose(ours, beta, rtol=1e-3, atol=1e-3 * np.abs(beta).max())
    assert diagnostics["sigma2_cluster"] == pytest.approx(tau2, rel=1e-2, abs=1e-6)
    assert diagnostics["sigma2_resid"] == pytest.approx(sigma2, rel=1e-3)


def test_profiled_deviance_is_minimised_on_the_whole_theta_range(fitted):
    """No grid point, however far, beats the optimum (a global, not a local, minimum)."""
    result = fitted("national")
    sums = mixed.cluster_sums(*_design_arrays("national"))
    best = mixed.profiled_reml_deviance(sums, result.diagnostics["theta"])
    for theta in np.concatenate([[0.0], np.geomspace(1e-6, 1e2, 400)]):
        assert mixed.profiled_reml_deviance(sums, theta) >= best - 1e-9
    assert -best / 2 == pytest.approx(result.diagnostics["reml_loglik"], abs=1e-9)


def _design_arrays(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from evalkit.analysis.data import build_design
    from evalkit.analysis.ols import independent_columns

    data = build_design(load(name), AnalysisColumns("y", "arm", "pdu", "region", ["x1"]))
    return data.y, data.X[:, independent_columns(data.X)], data.cluster


def test_golden_section_finds_the_minimum_of_a_parabola():
    x, value = mixed.golden_section(lambda t: (t - 0.37) ** 2 + 2.0, 0.0, 1.0)
    assert x == pytest.approx(0.37, abs=1e-7)   # f is flat to rounding within sqrt(eps)
    assert value == pytest.approx(2.0, abs=1e-14)


def test_non_finite_deviance_is_a_model_fit_error(monkeypatch):
    monkeypatch.setattr(mixed, "profiled_reml_deviance", lambda sums, theta: math.nan)
    with pytest.raises(ModelFitError, match="not finite"):
        fit_mixed(load("few_clusters"), AnalysisColumns("y", "arm", "pdu", "region", ["x1"]))


def test_no_residual_variance_is_a_model_fit_error():
    """Outcome constant within each cluster: sigma2 -> 0, theta -> infinity; refused clearly."""
    rows = [{"pdu": f"P{c}", "arm": "Treatment" if c % 2 else "Control", "y": float(c % 3)}
            for c in range(8) for _ in range(4)]
    with pytest.raises(ModelFitError, match="residual variance is ~0"):
        fit_mixed(pd.DataFrame(rows), AnalysisColumns("y", "arm", "pdu"))


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


def _exact_profiled_deviance(y: np.ndarray, X: np.ndarray, cluster: np.ndarray,
                             theta: float) -> float:
    """The profiled REML deviance with M, X'V^-1y and y'V^-1y in exact rational arithmetic."""
    from fractions import Fraction

    n, p = X.shape
    t2 = Fraction(theta) ** 2
    Xf = [[Fraction(v) for v in row] for row in X]
    yf = [Fraction(v) for v in y]
    M = [[sum(r[a] * r[b] for r in Xf) for b in range(p)] for a in range(p)]
    b = [sum(r[a] * v for r, v in zip(Xf, yf, strict=True)) for a in range(p)]
    yy = sum(v * v for v in yf)
    for g in range(int(cluster.max()) + 1):
        rows = np.flatnonzero(cluster == g)
        c = t2 / (1 + len(rows) * t2)
        xs = [sum(Xf[i][a] for i in rows) for a in range(p)]
        ys = sum(yf[i] for i in rows)
        M = [[M[a][k] - c * xs[a] * xs[k] for k in range(p)] for a in range(p)]
        b = [b[a] - c * xs[a] * ys for a in range(p)]
        yy -= c * ys * ys
    det = M[0][0] * M[1][1] - M[0][1] * M[1][0]                     # p = 2
    beta = [(M[1][1] * b[0] - M[0][1] * b[1]) / det, (M[0][0] * b[1] - M[1][0] * b[0]) / det]
    rss = yy - b[0] * beta[0] - b[1] * beta[1]
    sigma2 = float(rss / (n - p))
    sizes = np.bincount(cluster)
    return (n * math.log(sigma2) + float(np.log1p(sizes * theta**2).sum()) + (n - p)
            + math.log(float(det)) - p * math.log(sigma2) + (n - p) * math.log(2 * math.pi))


@pytest.mark.parametrize("theta", [0.0, 0.7, 100.0, 3e4])
def test_profiled_deviance_is_exact_even_at_a_huge_cluster_variance(theta):
    """Within-cluster cross-products keep the deviance exact to ~1e-12 at any theta (forming
    X'X - sum c_g x_g x_g' directly loses ~4e-6 at theta = 3e4; statsmodels does similarly)."""
    rng = np.random.default_rng(3)
    cluster = np.repeat(np.arange(6), [3, 5, 2, 4, 6, 3])
    X = np.column_stack([np.ones(cluster.size), (cluster % 2).astype(float)])
    y = 0.01 * rng.normal(size=cluster.size) + 300 * rng.normal(size=6)[cluster]
    sums = mixed.cluster_sums(y, X, cluster)
    exact = _exact_profiled_deviance(y, X, cluster, theta)
    assert mixed.profiled_reml_deviance(sums, theta) == pytest.approx(exact, abs=1e-9)

"""Linear mixed model with a random intercept per cluster, REML, and Satterthwaite df.

Matches R: `lmerTest::lmer(y ~ arm + strata + covariates + (1 | cluster), REML = TRUE)` with
`summary(fit, ddf = "Satterthwaite")` and, for the joint test of the arms, lmerTest's
multi-df `contestMD`. Method (Kuznetsova, Brockhoff & Christensen 2017, J. Stat. Softw. 82(13);
lmerTest 3.x sources): with variance parameters phi = (theta, sigma), theta = tau / sigma the
relative standard deviation of the cluster intercepts (lme4's parametrisation),

    A = 2 H^+,  H = Hessian of the REML deviance in phi (Moore-Penrose inverse),
    df(c) = 2 (c' V c)^2 / (g' A g),  g_k = c' (dV / dphi_k) c,  V = Var(beta-hat)(phi),

with H and dV / dphi by Richardson-extrapolated central differences (lmerTest uses numDeriv).

The fit minimises the profiled REML deviance in theta (sigma profiled out, as lme4 optimises
it), computed in closed form per cluster because (sigma2 I + tau2 J)^{-1} = (I - c J) / sigma2
with c = tau2 / (sigma2 + n tau2): after one pass over the rows for per-cluster sums, each
evaluation costs O(G p^2), so a log grid over theta plus a golden-section refinement finds the
optimum in milliseconds. X' V^-1 X is assembled as the within-cluster (centred) X'X plus
sum_g x_g x_g' / (n_g (1 + n_g theta^2)), which has no cancellation, so the deviance stays
exact to rounding even for an ICC near 1. No statsmodels fit is needed; the tests cross-check
the optimum against statsmodels `MixedLM(reml=True)`, exact arithmetic and lme4.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalkit.analysis.data import (
    AnalysisColumns,
    AnalysisData,
    AnalysisInputError,
    build_design,
)
from evalkit.analysis.failures import ModelFitError
from evalkit.analysis.kenward_roger import kenward_roger_df, kenward_roger_parts
from evalkit.analysis.ols import independent_columns
from evalkit.analysis.results import ModelResult, f_sf, make_contrast

ZERO_TOL = math.sqrt(np.finfo(float).eps / 7e-7)   # numDeriv's zero.tol
HESSIAN_STEP = 0.1             # numDeriv::hessian default d (relative first step)
JACOBIAN_STEP = 1e-4           # numDeriv::jacobian default d
SINGULAR_THETA = 1e-4          # lme4's isSingular() tolerance on theta
DDF_METHODS = {"satterthwaite": "Satterthwaite (lmerTest)",
               "kenward-roger": "Kenward-Roger (pbkrtest)"}


@dataclass
class ClusterSums:
    """Sufficient statistics for a random-intercept model: totals overall and per cluster."""

    sizes: np.ndarray      # n_g
    X_sums: np.ndarray     # G x p, column sums of X within each cluster
    y_sums: np.ndarray     # G
    XtX: np.ndarray
    Xty: np.ndarray
    yty: float
    # Within-cluster (centred) X'X, X'y, y'y: with them a large theta loses no precision.
    within: tuple[np.ndarray, np.ndarray, float] | None = None

    @property
    def n(self) -> int:
        return int(self.sizes.sum())

    @property
    def p(self) -> int:
        return int(self.XtX.shape[0])


def cluster_sums(y: np.ndarray, X: np.ndarray, cluster: np.ndarray) -> ClusterSums:
    """Per-cluster sums and cross-products, computed once so each REML evaluation is O(G p^2)."""
    n_clusters = int(cluster.max()) + 1
    X_sums = np.zeros((n_clusters, X.shape[1]))
    np.add.at(X_sums, cluster, X)
    sizes = np.bincount(cluster, minlength=n_clusters).astype(float)
    y_sums = np.bincount(cluster, weights=y, minlength=n_clusters)
    safe = np.maximum(sizes, 1.0)
    X_within = X - (X_sums / safe[:, None])[cluster]       # exactly 0 for cluster-level columns
    y_within = y - (y_sums / safe)[cluster]
    return ClusterSums(
        sizes=sizes, X_sums=X_sums, y_sums=y_sums, XtX=X.T @ X, Xty=X.T @ y, yty=float(y @ y),
        within=(X_within.T @ X_within, X_within.T @ y_within, float(y_within @ y_within)),
    )


@dataclass
class GlsPieces:
    """GLS quantities at fixed variance parameters (theta, sigma2)."""

    beta: np.ndarray
    cov_beta: np.ndarray        # (X' V^-1 X)^-1
    logdet_V: float
    logdet_XtVinvX: float
    rss_scaled: float           # r' (V / sigma2)^-1 r, the penalised RSS of lme4


def gls_pieces(sums: ClusterSums, theta: float, sigma2: float) -> GlsPieces:
    """GLS fit for V = sigma2 (I + theta^2 Z Z') using the closed-form per-cluster inverse."""
    if sums.within is None:
        shrink = theta**2 / (1.0 + sums.sizes * theta**2)      # c_g, in units of sigma2
        M = sums.XtX - (sums.X_sums * shrink[:, None]).T @ sums.X_sums
        b = sums.Xty - sums.X_sums.T @ (shrink * sums.y_sums)
        yy = sums.yty - float(shrink @ sums.y_sums**2)
    else:   # X'X - c_g-terms = within + sum x_g x_g' / (n_g (1 + n_g theta^2)): no cancellation
        keep = np.divide(1.0, sums.sizes * (1.0 + sums.sizes * theta**2),
                         out=np.zeros_like(sums.sizes), where=sums.sizes > 0)
        within_XX, within_Xy, within_yy = sums.within
        M = within_XX + (sums.X_sums * keep[:, None]).T @ sums.X_sums
        b = within_Xy + sums.X_sums.T @ (keep * sums.y_sums)
        yy = within_yy + float(keep @ sums.y_sums**2)
    M_inv = np.linalg.inv(M)
    beta = M_inv @ b
    _, logdet_M = np.linalg.slogdet(M)
    return GlsPieces(
        beta=beta, cov_beta=sigma2 * M_inv,
        logdet_V=float(sums.n * math.log(sigma2) + np.log1p(sums.sizes * theta**2).sum()),
        logdet_XtVinvX=float(logdet_M - sums.p * math.log(sigma2)),
        rss_scaled=float(yy - b @ beta),
    )


def reml_deviance(sums: ClusterSums, theta: float, sigma: float) -> float:
    """-2 REML log-likelihood at (theta, sigma): lmerTest's `devfun_vp` with REML = TRUE."""
    sigma2 = sigma**2
    pieces = gls_pieces(sums, theta, sigma2)
    return (pieces.logdet_V + pieces.rss_scaled / sigma2 + pieces.logdet_XtVinvX
            + (sums.n - sums.p) * math.log(2 * math.pi))


def profiled_sigma2(sums: ClusterSums, theta: float) -> float:
    """REML estimate of sigma2 given theta: penalised RSS / (n - p)."""
    return gls_pieces(sums, theta, 1.0).rss_scaled / (sums.n - sums.p)


def profiled_reml_deviance(sums: ClusterSums, theta: float) -> float:
    """REML deviance with sigma profiled out, the one-dimensional criterion lme4 minimises."""
    return reml_deviance(sums, theta, math.sqrt(profiled_sigma2(sums, theta)))


# --- numerical derivatives (Richardson extrapolation, as numDeriv does) -------------------

def _steps(x: np.ndarray, rel: float, zero_step: float = 1e-4) -> np.ndarray:
    """numDeriv's initial steps: rel * |x|, or zero_step where x is (nearly) zero."""
    return np.where(np.abs(x) > ZERO_TOL, rel * np.abs(x), zero_step)


def _richardson(estimate: Callable[[float], np.ndarray], levels: int = 4) -> np.ndarray:
    """Extrapolate a central-difference estimate D(h) (error ~ h^2) to h -> 0 by halving h."""
    table = [estimate(0.5**k) for k in range(levels)]
    for order in range(1, levels):
        factor = 4.0**order
        table = [(factor * table[k + 1] - table[k]) / (factor - 1) for k in range(len(table) - 1)]
    return table[0]


def numerical_hessian(f: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """Hessian of a scalar function by extrapolated central differences (numDeriv's steps)."""
    x = np.asarray(x, float)
    h0 = _steps(x, HESSIAN_STEP)
    k = len(x)
    f0 = f(x)

    def at_scale(s: float) -> np.ndarray:
        h = h0 * s
        hess = np.empty((k, k))
        for i in range(k):
            ei = np.eye(k)[i] * h[i]
            hess[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / h[i] ** 2
            for j in range(i):
                ej = np.eye(k)[j] * h[j]
                hess[i, j] = hess[j, i] = (
                    f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)
                ) / (4 * h[i] * h[j])
        return hess

    return _richardson(at_scale)


def numerical_jacobian(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """Derivative of an array-valued function along each coordinate (central differences)."""
    x = np.asarray(x, float)
    h0 = _steps(x, JACOBIAN_STEP)
    out = []
    for i in range(len(x)):
        unit = np.eye(len(x))[i]
        out.append(_richardson(
            lambda s, i=i, unit=unit: (f(x + unit * h0[i] * s) - f(x - unit * h0[i] * s))
            / (2 * h0[i] * s)
        ))
    return out


# --- fitting --------------------------------------------------------------------------------

THETA_GRID = np.concatenate([[0.0], np.geomspace(1e-5, 1e5, 101)])   # ratio 1.26 per step
THETA_XTOL = 1e-10             # golden-section tolerance on theta (relative, plus 1e-14)
INVERSE_PHI = (math.sqrt(5.0) - 1.0) / 2.0


def golden_section(f: Callable[[float], float], lower: float, upper: float,
                   xtol: float = THETA_XTOL) -> tuple[float, float]:
    """Minimum of a unimodal f on [lower, upper] by golden-section search: (x, f(x))."""
    a, b = lower, upper
    c, d = b - INVERSE_PHI * (b - a), a + INVERSE_PHI * (b - a)
    fc, fd = f(c), f(d)
    while b - a > xtol * (abs(c) + abs(d)) + 1e-14:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - INVERSE_PHI * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + INVERSE_PHI * (b - a)
            fd = f(d)
    return (c, fc) if fc <= fd else (d, fd)


def minimise_profiled_deviance(sums: ClusterSums) -> float:
    """theta >= 0 minimising the profiled REML deviance, as lme4 does (one dimension).

    Every evaluation is closed form, O(G p^2), so the whole curve is scanned on a log grid
    from 0 to 1e5 (steps of 26%, finer than any REML profile's curvature), then the best grid
    point's bracket is refined by golden section; theta = 0 (a singular fit) stays a candidate.
    """
    deviances = np.array([profiled_reml_deviance(sums, t) for t in THETA_GRID])
    if not np.any(np.isfinite(deviances)):
        raise ModelFitError("the REML deviance is not finite at any cluster variance")
    best = int(np.nanargmin(np.where(np.isfinite(deviances), deviances, np.nan)))
    if best == len(THETA_GRID) - 1:
        raise ModelFitError("the REML optimum puts (almost) all the variance between clusters "
                            f"(theta > {THETA_GRID[-1]:g}); the residual variance is ~0")
    lower, upper = THETA_GRID[max(best - 1, 0)], THETA_GRID[best + 1]
    theta, deviance = golden_section(lambda t: profiled_reml_deviance(sums, t), lower, upper)
    return float(min((theta, deviance), (THETA_GRID[best], deviances[best]),
                     key=lambda pair: pair[1])[0])


@dataclass
class RandomInterceptFit:
    """A REML random-intercept fit plus the pieces the df computation needs."""

    sums: ClusterSums
    theta: float
    sigma: float
    pieces: GlsPieces
    deviance: float

    @property
    def tau2(self) -> float:
        return (self.theta * self.sigma) ** 2

    @property
    def sigma2(self) -> float:
        return self.sigma**2

    @property
    def icc(self) -> float:
        return self.tau2 / (self.tau2 + self.sigma2)

    @property
    def singular(self) -> bool:
        return self.theta < SINGULAR_THETA

    def diagnostics(self) -> dict:
        """How the optimum was found and the variance components, for `ModelResult`."""
        out = {
            "optimiser": OPTIMISER,
            "reml_loglik": -self.deviance / 2,
            "sigma2_cluster": self.tau2, "sigma2_resid": self.sigma2, "theta": self.theta,
            "singular": self.singular, "warnings": [],
        }
        if self.singular:
            out["warnings"].append("boundary (singular) fit: cluster variance estimated as ~0")
        return out


OPTIMISER = "profiled REML deviance in closed form: log grid of theta, then golden section"


def check_identifiable(n_obs: int, n_clusters: int) -> None:
    """Refuse what lme4 refuses: one cluster, or no more rows than clusters."""
    if n_clusters < 2:
        raise AnalysisInputError(
            f"a random intercept per cluster needs at least two clusters; all {n_obs} rows "
            "are in one cluster")
    if n_clusters >= n_obs:
        raise AnalysisInputError(
            f"the number of clusters ({n_clusters}) must be fewer than the number of rows "
            f"({n_obs}), as lme4 requires: with one row per cluster the cluster variance "
            "cannot be told from the residual variance. For one row per PDU use --model hc2, "
            "dim or ri")


def hessian_warnings(eigenvalues: Sequence[float], tol: float = 1e-8) -> list[str]:
    """lmerTest's checks of the REML Hessian: negative or near-zero eigenvalues."""
    values = np.asarray(eigenvalues, float)
    out = []
    for label, mask in (("negative", values < -tol), ("close to zero", np.abs(values) <= tol)):
        if mask.any():
            listed = " ".join(f"{v:.1e}" for v in values[mask])
            out.append(f"the REML Hessian is not positive definite ({int(mask.sum())} "
                       f"eigenvalue(s) {label}: {listed}): the model may not have converged "
                       "and its Satterthwaite df are unreliable")
    return out


def fit_random_intercept(y: np.ndarray, X: np.ndarray, cluster: np.ndarray) -> RandomInterceptFit:
    """REML fit: the profiled deviance minimised in theta, then sigma2 and beta in closed form."""
    check_identifiable(len(y), int(cluster.max()) + 1)
    sums = cluster_sums(y, X, cluster)
    theta = minimise_profiled_deviance(sums)
    sigma = math.sqrt(profiled_sigma2(sums, theta))
    deviance = reml_deviance(sums, theta, sigma)
    pieces = gls_pieces(sums, theta, sigma**2)
    if not (math.isfinite(deviance) and np.all(np.isfinite(pieces.beta))):
        raise ModelFitError(f"no finite REML optimum (deviance {deviance}, theta {theta})")
    return RandomInterceptFit(sums, theta, sigma, pieces, deviance)


# --- Satterthwaite ---------------------------------------------------------------------------

@dataclass
class SatterthwaiteParts:
    """A = asymptotic covariance of (theta, sigma); jacobian = dVar(beta)/d(theta, sigma)."""

    vcov_varpar: np.ndarray
    jacobian: list[np.ndarray]
    hessian_eigenvalues: list[float]


def satterthwaite_parts(fit: RandomInterceptFit, tol: float = 1e-8) -> SatterthwaiteParts:
    """Hessian of the REML deviance and gradient of Var(beta), as lmerTest's `as_lmerModLT`."""
    varpar = np.array([fit.theta, fit.sigma])
    hessian = numerical_hessian(lambda v: reml_deviance(fit.sums, v[0], v[1]), varpar)
    values, vectors = np.linalg.eigh(hessian)
    keep = values > tol
    h_pinv = (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
    jacobian = numerical_jacobian(
        lambda v: gls_pieces(fit.sums, v[0], v[1] ** 2).cov_beta, varpar)
    return SatterthwaiteParts(2 * h_pinv, jacobian, [float(v) for v in values])


def satterthwaite_df(L: np.ndarray, cov_beta: np.ndarray, parts: SatterthwaiteParts) -> float:
    """df = 2 (L V L')^2 / (g' A g) for one contrast row L (lmerTest `contest1D`)."""
    variance = float(L @ cov_beta @ L)
    gradient = np.array([L @ J @ L for J in parts.jacobian])
    return 2 * variance**2 / float(gradient @ parts.vcov_varpar @ gradient)


def satterthwaite_f_test(L: np.ndarray, beta: np.ndarray, cov_beta: np.ndarray,
                         parts: SatterthwaiteParts, eps: float = 1.5e-8) -> dict:
    """Multi-df F test of L beta = 0 with lmerTest's `contestMD` denominator df."""
    values, vectors = np.linalg.eigh(L @ cov_beta @ L.T)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    keep = values > max(eps * values[0], 0)
    rotated = vectors[:, keep].T @ L
    t_squared = (rotated @ beta) ** 2 / values[keep]
    q = int(keep.sum())
    nu = np.array([satterthwaite_df(row, cov_beta, parts) for row in rotated])
    if q == 1 or np.all(np.abs(np.diff(nu)) < 1e-8):
        ddf = float(nu.mean())
    elif np.any(nu <= 2):
        ddf = 2.0
    else:
        expected = float(np.sum(nu / (nu - 2)))
        ddf = 2 * expected / (expected - q)
    f_value = float(t_squared.sum() / q)
    return {"test": "F", "statistic": f_value, "df_num": q, "df_denom": ddf,
            "p_value": f_sf(f_value, q, ddf),
            "method": "Satterthwaite (lmerTest contestMD)"}


# --- public entry point ----------------------------------------------------------------------

def fit_mixed(
    df: pd.DataFrame,
    cols: AnalysisColumns,
    *,
    alpha: float = 0.05,
    non_randomised_arms: Sequence[str] = (),
    ddf: str = "satterthwaite",
) -> ModelResult:
    """Arm effects vs control from a REML random-intercept model with Satterthwaite df.

    `ddf="kenward-roger"` uses the Kenward-Roger adjusted Var(beta) and df for the contrasts
    (pbkrtest, as lmerTest's `ddf = "Kenward-Roger"`); the joint test stays Satterthwaite.
    """
    if ddf not in DDF_METHODS:
        raise AnalysisInputError(f"ddf must be 'satterthwaite' or 'kenward-roger', not {ddf!r}")
    data = build_design(df, cols)
    keep = independent_columns(data.X)
    columns = [c for c, k in zip(data.columns, keep, strict=True) if k]
    positions = _arm_positions(data, columns)
    fit = fit_random_intercept(data.y, data.X[:, keep], data.cluster)
    parts = satterthwaite_parts(fit)
    beta, cov_beta = fit.pieces.beta, fit.pieces.cov_beta
    contrast_cov, dfs = _contrast_inference(data.X[:, keep], data.cluster, fit, parts,
                                            positions, ddf)
    non_randomised = set(map(str, non_randomised_arms))
    contrasts = [
        make_contrast(arm, cols.control, beta[pos], math.sqrt(contrast_cov[pos, pos]),
                      dfs[arm], alpha=alpha, randomised=arm not in non_randomised)
        for arm, pos in positions.items()
    ]
    identity = np.eye(len(columns))
    joint = satterthwaite_f_test(identity[list(positions.values())], beta, cov_beta, parts)
    joint["hypothesis"] = "all arm effects vs control are zero"
    diagnostics = fit.diagnostics()
    diagnostics.update(
        df_method=DDF_METHODS[ddf],
        aliased_columns=[c for c, k in zip(data.columns, keep, strict=True) if not k],
        coefficients=dict(zip(columns, map(float, beta), strict=True)),
        hessian_eigenvalues=parts.hessian_eigenvalues,
    )
    diagnostics["warnings"] += hessian_warnings(parts.hessian_eigenvalues)
    for arm in sorted(non_randomised & set(positions)):
        diagnostics["warnings"].append(
            f"arm {arm!r} was not randomised (purposive allocation): its contrast with "
            f"{cols.control!r} is observational and may be confounded")
    return ModelResult(
        model="mixed", outcome=cols.outcome, n_obs=data.n_obs, n_clusters=data.n_clusters,
        contrasts=contrasts, joint_test=joint, diagnostics=diagnostics, icc=fit.icc,
        n_dropped=data.n_dropped,
    )


def _arm_positions(data: AnalysisData, columns: list[str]) -> dict[str, int]:
    """Column of each arm dummy among the kept columns; an aliased arm is an input error."""
    positions = {}
    for arm in data.arms:
        name = data.columns[data.arm_index[arm]]
        if name not in columns:
            raise AnalysisInputError(f"arm {arm!r} is collinear with strata/covariates")
        positions[arm] = columns.index(name)
    return positions


def _contrast_inference(X: np.ndarray, cluster: np.ndarray, fit: RandomInterceptFit,
                        parts: SatterthwaiteParts, positions: dict[str, int],
                        ddf: str) -> tuple[np.ndarray, dict[str, float]]:
    """Var(beta) used for the contrasts and each arm's df (Satterthwaite or Kenward-Roger)."""
    identity = np.eye(X.shape[1])
    if ddf == "kenward-roger":
        kr = kenward_roger_parts(X, cluster, fit.tau2, fit.sigma2)
        return kr.phi_adjusted, {arm: kenward_roger_df(identity[pos], kr)
                                 for arm, pos in positions.items()}
    cov_beta = fit.pieces.cov_beta
    return cov_beta, {arm: satterthwaite_df(identity[pos], cov_beta, parts)
                      for arm, pos in positions.items()}

"""Three-level random-intercept model (staff in PODs in PDUs), REML, Satterthwaite df.

Matches R: `lmerTest::lmer(y ~ arm + strata + covariates + (1 | pdu/pod), REML = TRUE)` with
`summary(fit, ddf = "Satterthwaite")`. Variance parameters as lme4 has them: theta_pod and
theta_pdu, the POD and PDU intercept SDs relative to the residual SD sigma.

Within a PDU, V / sigma2 = A + theta_pdu^2 1 1' with A = I + theta_pod^2 blockdiag(J_pod), so
A^-1 = blockdiag(I - c_k J) with c_k = theta_pod^2 / (1 + m_k theta_pod^2) and the PDU term
follows by Sherman-Morrison: every quantity needs only per-POD sums, never an n x n matrix.
The profiled REML deviance is minimised over (theta_pod, theta_pdu) >= 0 from several
starts; Satterthwaite df come from the same numerical Hessian and Jacobian as `mixed`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize

from evalkit.analysis.data import AnalysisColumns, AnalysisInputError, build_design
from evalkit.analysis.mixed import (
    SINGULAR_THETA,
    ClusterSums,
    GlsPieces,
    SatterthwaiteParts,
    check_identifiable,
    cluster_sums,
    hessian_warnings,
    numerical_hessian,
    numerical_jacobian,
    satterthwaite_df,
    satterthwaite_f_test,
)
from evalkit.analysis.ols import independent_columns
from evalkit.analysis.results import ModelResult, make_contrast


@dataclass
class PodSums(ClusterSums):
    """ClusterSums with PODs as the clusters, plus the PDU each POD belongs to."""

    pdu_of_pod: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))


def pod_sums(y: np.ndarray, X: np.ndarray, pod: np.ndarray, pdu_of_pod: np.ndarray) -> PodSums:
    """Sufficient statistics for the nested model, computed once: per-POD sums and the
    POD -> PDU map."""
    sums = cluster_sums(y, X, pod)
    return PodSums(sizes=sums.sizes, X_sums=sums.X_sums, y_sums=sums.y_sums, XtX=sums.XtX,
                   Xty=sums.Xty, yty=sums.yty, pdu_of_pod=pdu_of_pod)


def nested_gls(sums: PodSums, theta_pod: float, theta_pdu: float, sigma2: float) -> GlsPieces:
    """GLS fit at fixed variance parameters, from per-POD sums (see module docstring)."""
    c = theta_pod**2 / (1.0 + sums.sizes * theta_pod**2)
    w = 1.0 / (1.0 + sums.sizes * theta_pod**2)                 # (A^-1 1) within each POD
    n_pdus = int(sums.pdu_of_pod.max()) + 1
    s = np.bincount(sums.pdu_of_pod, weights=sums.sizes * w, minlength=n_pdus)
    Xw = np.zeros((n_pdus, sums.p))
    np.add.at(Xw, sums.pdu_of_pod, sums.X_sums * w[:, None])
    yw = np.bincount(sums.pdu_of_pod, weights=sums.y_sums * w, minlength=n_pdus)
    d = theta_pdu**2 / (1.0 + theta_pdu**2 * s)
    M = sums.XtX - (sums.X_sums * c[:, None]).T @ sums.X_sums - (Xw * d[:, None]).T @ Xw
    b = sums.Xty - sums.X_sums.T @ (c * sums.y_sums) - Xw.T @ (d * yw)
    yy = sums.yty - float(c @ sums.y_sums**2) - float(d @ yw**2)
    M_inv = np.linalg.inv(M)
    beta = M_inv @ b
    logdet = (np.log1p(sums.sizes * theta_pod**2).sum() + np.log1p(theta_pdu**2 * s).sum())
    return GlsPieces(beta=beta, cov_beta=sigma2 * M_inv,
                     logdet_V=float(sums.n * math.log(sigma2) + logdet),
                     logdet_XtVinvX=float(np.linalg.slogdet(M)[1] - sums.p * math.log(sigma2)),
                     rss_scaled=float(yy - b @ beta))


def nested_deviance(sums: PodSums, theta_pod: float, theta_pdu: float, sigma: float) -> float:
    """-2 REML log-likelihood at (theta_pod, theta_pdu, sigma)."""
    pieces = nested_gls(sums, theta_pod, theta_pdu, sigma**2)
    return (pieces.logdet_V + pieces.rss_scaled / sigma**2 + pieces.logdet_XtVinvX
            + (sums.n - sums.p) * math.log(2 * math.pi))


def _profiled(sums: PodSums, thetas: np.ndarray) -> tuple[float, float]:
    """(profiled REML deviance, sigma) at |thetas| (the deviance is even in each theta)."""
    t_pod, t_pdu = abs(float(thetas[0])), abs(float(thetas[1]))
    sigma = math.sqrt(nested_gls(sums, t_pod, t_pdu, 1.0).rss_scaled / (sums.n - sums.p))
    return nested_deviance(sums, t_pod, t_pdu, sigma), sigma


def fit_thetas(sums: PodSums) -> np.ndarray:
    """Minimise the profiled REML deviance over (theta_pod, theta_pdu) >= 0.

    L-BFGS-B from (0.5, 0.5), polished by Nelder-Mead; a fit near a boundary is re-run from
    starts on that boundary and the best optimum kept.
    """
    def deviance(t: np.ndarray) -> float:
        return _profiled(sums, t)[0]

    def solve(start: tuple[float, float]) -> np.ndarray:
        first = optimize.minimize(deviance, np.array(start), method="L-BFGS-B",
                                  bounds=[(0, None), (0, None)],
                                  options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 500})
        polished = optimize.minimize(deviance, first.x, method="Nelder-Mead",
                                     options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 2000})
        return min((np.abs(first.x), np.abs(polished.x)), key=deviance)

    candidates = [solve((0.5, 0.5))]
    best = candidates[0]
    if best.min() < 1e-3:
        candidates += [solve((0.0, 0.5)), solve((0.5, 0.0)), np.zeros(2)]
    return min(candidates, key=deviance)


def _nested_codes(frame: pd.DataFrame, pdu_col: str, pod_col: str) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """POD code per row and PDU code per POD; a POD in two PDUs is an error naming it."""
    spread = frame.groupby(pod_col, sort=True)[pdu_col].nunique()
    if (spread > 1).any():
        raise AnalysisInputError(f"POD {spread.index[spread > 1][0]!r} is in more than one PDU: "
                                 f"column {pod_col!r} must be nested in {pdu_col!r}")
    pod_labels, pod = np.unique(frame[pod_col].astype(str).to_numpy(), return_inverse=True)
    first_pdu = frame.groupby(frame[pod_col].astype(str), sort=True)[pdu_col].first()
    _, pdu_of_pod = np.unique(first_pdu.reindex(pod_labels).astype(str).to_numpy(),
                              return_inverse=True)
    return pod.astype(np.int64), pdu_of_pod.astype(np.int64)


def fit_three_level(
    df: pd.DataFrame,
    cols: AnalysisColumns,
    *,
    pod: str,
    alpha: float = 0.05,
    non_randomised_arms: Sequence[str] = (),
) -> ModelResult:
    """Arm effects from y ~ arm + strata + covariates + (1 | cluster/pod), Satterthwaite df.

    `cols.cluster` is the PDU and `pod` the team column nested in it; ICCs at both levels.
    """
    work = df.dropna(subset=[pod]) if pod in df.columns else None
    if work is None:
        raise AnalysisInputError(f"POD column {pod!r} not found")
    data = build_design(work, cols)
    frame = work.loc[work[cols.needed].notna().all(axis=1)].reset_index(drop=True)
    pod_codes, pdu_of_pod = _nested_codes(frame, cols.cluster, pod)
    check_identifiable(data.n_obs, int(pdu_of_pod.max()) + 1)
    check_identifiable(data.n_obs, len(pdu_of_pod))
    keep = independent_columns(data.X)
    X = data.X[:, keep]
    sums = pod_sums(data.y, X, pod_codes, pdu_of_pod)
    thetas = fit_thetas(sums)
    deviance, sigma = _profiled(sums, thetas)
    parts = _satterthwaite(sums, np.array([*thetas, sigma]))
    fit = NestedFit(nested_gls(sums, thetas[0], thetas[1], sigma**2), parts, thetas, sigma,
                    deviance, len(sums.sizes))
    return _result(cols, data, keep, fit, alpha, non_randomised_arms)


def _satterthwaite(sums: PodSums, varpar: np.ndarray, tol: float = 1e-8) -> SatterthwaiteParts:
    """A = 2 H^+ of the REML deviance in (theta_pod, theta_pdu, sigma) and dVar(beta)."""
    hessian = numerical_hessian(lambda v: nested_deviance(sums, v[0], v[1], v[2]), varpar)
    values, vectors = np.linalg.eigh(hessian)
    kept = values > tol
    h_pinv = (vectors[:, kept] / values[kept]) @ vectors[:, kept].T
    jacobian = numerical_jacobian(
        lambda v: nested_gls(sums, v[0], v[1], v[2] ** 2).cov_beta, varpar)
    return SatterthwaiteParts(2 * h_pinv, jacobian, [float(v) for v in values])


@dataclass
class NestedFit:
    """The REML optimum: GLS pieces, Satterthwaite parts and variance parameters."""

    pieces: GlsPieces
    parts: SatterthwaiteParts
    thetas: np.ndarray
    sigma: float
    deviance: float
    n_pods: int

    def components(self) -> dict[str, float]:
        """Variance components and the ICCs at PDU and POD level."""
        tau_pod, tau_pdu = (self.thetas * self.sigma) ** 2
        sigma2 = self.sigma**2
        total = tau_pod + tau_pdu + sigma2
        return {"sigma2_pdu": float(tau_pdu), "sigma2_pod": float(tau_pod),
                "sigma2_resid": sigma2, "icc_pdu": float(tau_pdu / total),
                "icc_pod": float((tau_pdu + tau_pod) / total)}

    def warnings(self) -> list[str]:
        """Hessian checks and boundary fits at either level."""
        found = hessian_warnings(self.parts.hessian_eigenvalues)
        return found + [f"boundary (singular) fit: {level} variance estimated as ~0"
                        for level, theta in zip(("POD", "PDU"), self.thetas, strict=True)
                        if theta < SINGULAR_THETA]


def _result(cols: AnalysisColumns, data, keep: np.ndarray, fit: NestedFit, alpha: float,
            non_randomised_arms: Sequence[str]) -> ModelResult:
    """Contrasts, joint F test, variance components and warnings as a ModelResult."""
    columns = [c for c, k in zip(data.columns, keep, strict=True) if k]
    positions = {arm: columns.index(data.columns[data.arm_index[arm]]) for arm in data.arms
                 if data.columns[data.arm_index[arm]] in columns}
    if len(positions) < len(data.arms):
        raise AnalysisInputError("an arm is collinear with strata/covariates")
    identity = np.eye(len(columns))
    beta, cov, parts = fit.pieces.beta, fit.pieces.cov_beta, fit.parts
    contrasts = [make_contrast(arm, cols.control, beta[pos], math.sqrt(cov[pos, pos]),
                               satterthwaite_df(identity[pos], cov, parts), alpha=alpha,
                               randomised=arm not in set(non_randomised_arms))
                 for arm, pos in positions.items()]
    joint = satterthwaite_f_test(identity[list(positions.values())], beta, cov, parts)
    joint["hypothesis"] = "all arm effects vs control are zero"
    components = fit.components()
    return ModelResult(
        model="mixed3", outcome=cols.outcome, n_obs=data.n_obs, n_clusters=data.n_clusters,
        contrasts=contrasts, joint_test=joint, icc=components["icc_pdu"],
        n_dropped=data.n_dropped,
        diagnostics={
            **components, "n_pods": fit.n_pods, "reml_criterion": fit.deviance,
            "theta": {"pod": float(fit.thetas[0]), "pdu": float(fit.thetas[1])},
            "df_method": "Satterthwaite (lmerTest)",
            "hessian_eigenvalues": parts.hessian_eigenvalues, "warnings": fit.warnings(),
            "coefficients": dict(zip(columns, map(float, beta), strict=True)),
        },
    )

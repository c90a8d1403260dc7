"""OLS of an outcome on arm (+ strata + covariates) with cluster-robust CR2 or CR1S errors.

Matches R: `lm(y ~ arm + strata + covariates)` with clubSandwich `vcovCR(type = "CR2")`,
`coef_test(test = "Satterthwaite")` and `Wald_test(test = "HTZ")` (Bell & McCaffrey 2002;
Pustejovsky & Tipton 2018), or `vcovCR(type = "CR1S")` with G - 1 df.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from evalkit.analysis import cluster_robust as cr
from evalkit.analysis.data import (
    AnalysisColumns,
    AnalysisData,
    AnalysisInputError,
    build_design,
)
from evalkit.analysis.results import ModelResult, make_contrast


@dataclass
class LeastSquaresFit:
    """Coefficients, residuals and the (full-rank) design they came from."""

    X: np.ndarray
    columns: list[str]
    beta: np.ndarray
    residuals: np.ndarray
    bread: np.ndarray
    aliased: list[str]


QR_BLOCK = 2048   # rows per block of the tall-skinny QR (numpy's QR of a tall C array is slow)


def r_factor(X: np.ndarray) -> np.ndarray:
    """R of X = QR (rows up to sign) by a tall-skinny QR: the Rs of row blocks, stacked,
    factorised again. The same R as one QR of X to rounding, several times faster for
    thousands of rows (LAPACK on a transposed copy of the whole array is cache-bound)."""
    if X.shape[0] <= QR_BLOCK:
        return np.linalg.qr(X, mode="r")
    blocks = [np.linalg.qr(X[start:start + QR_BLOCK], mode="r")
              for start in range(0, X.shape[0], QR_BLOCK)]
    return np.linalg.qr(np.vstack(blocks), mode="r")


def independent_columns(X: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Mask of columns kept when later columns that are linear in earlier ones are dropped.

    Mirrors R's `lm`, which reports such (aliased) coefficients as NA: in an unpivoted QR,
    |R_jj| is the part of column j not explained by the columns before it.
    """
    keep = np.ones(X.shape[1], dtype=bool)
    scale = np.maximum(np.linalg.norm(X, axis=0), 1.0)
    while True:
        kept = np.flatnonzero(keep)
        r_diag = np.abs(np.diag(r_factor(X[:, kept])))
        aliased = np.flatnonzero(r_diag <= tol * scale[kept])
        if aliased.size == 0:
            return keep
        keep[kept[aliased[0]]] = False


def least_squares(X: np.ndarray, y: np.ndarray, columns: Sequence[str]) -> LeastSquaresFit:
    """OLS on the independent columns of X, recording the names of aliased ones."""
    keep = independent_columns(X)
    X_used = X[:, keep]
    bread = cr.bread_matrix(X_used)
    beta = bread @ (X_used.T @ y)
    return LeastSquaresFit(
        X=X_used, columns=[c for c, k in zip(columns, keep, strict=True) if k], beta=beta,
        residuals=y - X_used @ beta, bread=bread,
        aliased=[c for c, k in zip(columns, keep, strict=True) if not k],
    )


def _arm_positions(data: AnalysisData, fit: LeastSquaresFit) -> dict[str, int]:
    """Column of each arm dummy in the fitted design; an aliased arm is an input error."""
    positions = {}
    for arm in data.arms:
        name = data.columns[data.arm_index[arm]]
        if name not in fit.columns:
            raise AnalysisInputError(f"arm {arm!r} is collinear with strata/covariates")
        positions[arm] = fit.columns.index(name)
    return positions


VCOV_LABELS = {
    "CR2": ("CR2 (Bell-McCaffrey)", "Satterthwaite (Pustejovsky-Tipton)"),
    "CR1": ("CR1S", "G - 1"),
    "HC2": ("HC2 (one row per unit)", "N - p"),
}


def fit_ols_cr(
    df: pd.DataFrame,
    cols: AnalysisColumns,
    *,
    vcov: Literal["CR2", "CR1", "HC2"] = "CR2",
    alpha: float = 0.05,
    non_randomised_arms: Sequence[str] = (),
) -> ModelResult:
    """Arm effects vs control from OLS with CR2 (Satterthwaite df, HTZ), CR1S (G-1 df) or,
    for one row per unit (e.g. PDU-level outcomes), HC2 with N - p df (estimatr's
    `lm_robust(se_type = "HC2")`); the cluster column is then not used for the errors."""
    if vcov not in VCOV_LABELS:
        raise AnalysisInputError(f"vcov must be one of {', '.join(VCOV_LABELS)}, not {vcov!r}")
    data = build_design(df, cols)
    if data.n_clusters < 2 and vcov != "HC2":
        raise AnalysisInputError("cluster-robust errors need at least two clusters")
    fit = least_squares(data.X, data.y, data.columns)
    positions = _arm_positions(data, fit)
    constraints = np.eye(len(fit.columns))[list(positions.values())]
    covariance, dfs, joint = _covariance_and_tests(data, fit, positions, constraints, vcov)
    joint["hypothesis"] = "all arm effects vs control are zero"
    non_randomised = set(map(str, non_randomised_arms))
    contrasts = [
        make_contrast(arm, cols.control, fit.beta[pos], float(np.sqrt(covariance[pos, pos])),
                      dfs[arm], alpha=alpha, randomised=arm not in non_randomised)
        for arm, pos in positions.items()
    ]
    label, df_method = VCOV_LABELS[vcov]
    return ModelResult(
        model=vcov.lower(), outcome=cols.outcome, n_obs=data.n_obs,
        n_clusters=data.n_clusters, contrasts=contrasts, joint_test=joint,
        n_dropped=data.n_dropped,
        diagnostics={
            "vcov": label, "df_method": df_method, "aliased_columns": fit.aliased,
            "coefficients": dict(zip(fit.columns, map(float, fit.beta), strict=True)),
        },
    )


def _covariance_and_tests(data: AnalysisData, fit: LeastSquaresFit, positions: dict[str, int],
                          constraints: np.ndarray, vcov: str):
    """Var(beta), each arm's df and the joint test for the chosen variance estimator."""
    if vcov == "CR1":
        covariance = cr.cr1s_vcov(fit.X, fit.residuals, data.cluster)
        dfs = {arm: float(data.n_clusters - 1) for arm in positions}
        return covariance, dfs, cr.naive_f_test(fit.beta, covariance, constraints,
                                                data.n_clusters)
    units = data.cluster if vcov == "CR2" else np.arange(data.n_obs)
    pieces = cr.cr2_pieces(fit.X, fit.residuals, units, fit.bread)
    covariance = cr.sandwich(pieces)
    if vcov == "CR2":
        dfs = {arm: cr.satterthwaite_df(pieces, row)
               for arm, row in zip(positions, constraints, strict=True)}
        return covariance, dfs, cr.htz_test(pieces, fit.beta, covariance, constraints)
    residual_df = float(data.n_obs - fit.X.shape[1])
    dfs = {arm: residual_df for arm in positions}
    joint = cr.naive_f_test(fit.beta, covariance, constraints, int(residual_df) + 1)
    joint["test"] = "Wald F (HC2)"
    return covariance, dfs, joint

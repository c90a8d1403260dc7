"""Complier average causal effect (CACE) by two-stage least squares with CR2 errors.

For each arm versus control, random assignment to the arm instruments programme completion
(Angrist, Imbens & Rubin 1996): `y ~ compliance + strata + covariates | arm + strata +
covariates`. As in estimatr's `iv_robust(se_type = "CR2")`, the CR2 adjustment and the
Satterthwaite df (Bell & McCaffrey 2002; Pustejovsky & Tipton 2018) use the first-stage fitted
regressors together with the structural residuals y - X beta.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from evalkit.analysis import cluster_robust as cr
from evalkit.analysis.data import (
    AnalysisColumns,
    AnalysisData,
    AnalysisInputError,
    build_design,
    ordered_arms,
)
from evalkit.analysis.ols import independent_columns
from evalkit.analysis.results import Contrast, ModelResult, make_contrast


def _instrument_and_regressors(data: AnalysisData, arm: str, compliance_col: str):
    """Z = [1, arm, strata, covariates]; X = Z with the arm dummy replaced by compliance."""
    compliance_at = data.columns.index(compliance_col)
    arm_at = data.arm_index[arm]
    Z = np.delete(data.X, compliance_at, axis=1)
    X = Z.copy()
    X[:, arm_at] = data.X[:, compliance_at]
    keep = independent_columns(Z)
    if not keep[arm_at]:
        raise AnalysisInputError(f"arm {arm!r} is collinear with strata/covariates")
    return Z[:, keep], X[:, keep], int(np.sum(keep[:arm_at]))


def _first_stage_f(Z: np.ndarray, compliance: np.ndarray, cluster: np.ndarray, at: int):
    """Cluster-robust (CR2) F for the instrument in the first stage, on (1, G - 1) df."""
    bread = cr.bread_matrix(Z)
    gamma = bread @ (Z.T @ compliance)
    pieces = cr.cr2_pieces(Z, compliance - Z @ gamma, cluster, bread)
    f_stat = float(gamma[at] ** 2 / cr.sandwich(pieces)[at, at])
    df_denom = pieces.n_clusters - 1
    return {"statistic": f_stat, "df_num": 1.0, "df_denom": float(df_denom),
            "p_value": float(stats.f.sf(f_stat, 1, df_denom)), "coefficient": float(gamma[at])}


def _cace_for_arm(data: AnalysisData, arm: str, compliance_col: str):
    """2SLS estimate, CR2 SE and df for compliance, plus first-stage diagnostics."""
    Z, X, at = _instrument_and_regressors(data, arm, compliance_col)
    x_hat = Z @ cr.bread_matrix(Z) @ (Z.T @ X)
    bread = cr.bread_matrix(x_hat)
    beta = bread @ (x_hat.T @ data.y)
    pieces = cr.cr2_pieces(x_hat, data.y - X @ beta, data.cluster, bread)
    se = float(np.sqrt(cr.sandwich(pieces)[at, at]))
    contrast_vector = np.eye(X.shape[1])[at]
    df = cr.satterthwaite_df(pieces, contrast_vector)
    first_stage = _first_stage_f(Z, X[:, at], data.cluster, at)
    return float(beta[at]), se, df, first_stage


def _compliance_rates(data: AnalysisData, compliance_col: str) -> dict[str, float]:
    """Mean of the compliance indicator in each arm present (completion rate)."""
    return {str(k): float(v) for k, v in
            data.frame.groupby(data.arm_labels)[compliance_col].mean().items()}


def fit_cace(
    df: pd.DataFrame,
    cols: AnalysisColumns,
    *,
    compliance: str,
    alpha: float = 0.05,
    non_randomised_arms: Sequence[str] = (),
) -> ModelResult:
    """CACE of each arm vs control by 2SLS (arm instruments compliance), CR2 errors and df.

    `compliance` names the 0/1 column saying whether each person received the programme.
    """
    if compliance in cols.covariates:
        raise AnalysisInputError("the compliance column cannot also be a covariate")
    arms = ordered_arms(df[cols.arm].dropna().astype(str), cols.control)
    with_compliance = cols.with_changes(covariates=(*cols.covariates, compliance))
    contrasts: list[Contrast] = []
    diagnostics: dict = {"first_stage": {}, "compliance_rates": {}}
    n_dropped: dict[str, int] = {}
    rows_used: dict[str, int] = {}
    clusters_used: set[str] = set()
    for arm in arms:
        data = build_design(df, with_compliance, arms=[arm])
        estimate, se, dof, first_stage = _cace_for_arm(data, arm, compliance)
        contrast = make_contrast(arm, cols.control, estimate, se, dof, alpha,
                                 randomised=arm not in set(non_randomised_arms))
        contrast.extra = {"n_obs_contrast": data.n_obs, "n_clusters_contrast": data.n_clusters}
        contrasts.append(contrast)
        diagnostics["first_stage"][arm] = first_stage
        diagnostics["compliance_rates"][arm] = _compliance_rates(data, compliance)
        n_dropped[arm] = data.n_dropped
        rows_used.update(pd.Series(data.arm_labels).value_counts().to_dict())
        clusters_used |= set(data.cluster_labels.tolist())
    return ModelResult(model="cace", outcome=cols.outcome, n_obs=int(sum(rows_used.values())),
                       n_clusters=len(clusters_used), contrasts=contrasts,
                       diagnostics=diagnostics, n_dropped=n_dropped)

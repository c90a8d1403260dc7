"""Standardised effect sizes for a cluster-randomised trial, and the ICC they rest on.

- `icc_estimate`: ICC from the null random-intercept model `y ~ 1 + (1 | cluster)` (REML,
  as lme4), with Searle's (1971, Linear Models, p. 474) F-based confidence interval, using
  the adjusted mean cluster size n0 for unbalanced designs (Donner 1986, Int. Stat. Rev. 54).
- `eef_effect_size`: Education Endowment Foundation style g = adjusted coefficient / total SD,
  total SD = sqrt(sigma2_cluster + sigma2_resid) of the null multilevel model (EEF 2022,
  Statistical analysis guidance for EEF evaluations).
- `hedges_g_clustered`: Hedges (2007), "Effect sizes in cluster-randomized designs",
  J. Educ. Behav. Stat. 32(4), 341-370: d_T with the clustering correction and its variance.
- `cox_index`: difference in logits / 1.65 for binary outcomes (What Works Clearinghouse
  Procedures Handbook v4.1, after Cox 1970).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from evalkit.analysis.data import AnalysisInputError
from evalkit.analysis.mixed import fit_random_intercept

COX_SCALE = 1.65


def _outcome_by_cluster(df: pd.DataFrame, outcome: str, cluster_col: str) -> pd.DataFrame:
    """Complete rows of (outcome, cluster) with a numeric outcome and integer cluster codes."""
    for column in (outcome, cluster_col):
        if column not in df.columns:
            raise AnalysisInputError(f"column {column!r} not found")
    work = df[[outcome, cluster_col]].dropna().reset_index(drop=True)
    if work.empty:
        raise AnalysisInputError(f"no complete rows for outcome {outcome!r}")
    work[outcome] = pd.to_numeric(work[outcome], errors="raise").astype(float)
    work["_code"] = pd.factorize(work[cluster_col].astype(str), sort=True)[0]
    return work


def searle_icc_interval(y: np.ndarray, cluster: np.ndarray, alpha: float = 0.05) -> dict:
    """One-way ANOVA ICC and Searle's F-based (1 - alpha) interval with Donner's n0."""
    sizes = np.bincount(cluster).astype(float)
    n, g = float(sizes.sum()), len(sizes)
    if g < 2 or n - g < 1:
        raise AnalysisInputError("the ICC interval needs at least two clusters and n > clusters")
    means = np.bincount(cluster, weights=y) / sizes
    ms_between = float(sizes @ (means - y.mean()) ** 2) / (g - 1)
    ms_within = float(((y - means[cluster]) ** 2).sum()) / (n - g)
    n0 = (n - float((sizes**2).sum()) / n) / (g - 1)
    f_obs = ms_between / ms_within
    f_low = f_obs / stats.f.ppf(1 - alpha / 2, g - 1, n - g)
    f_high = f_obs / stats.f.ppf(alpha / 2, g - 1, n - g)
    return {
        "icc_anova": (ms_between - ms_within) / (ms_between + (n0 - 1) * ms_within),
        "ci_low": (f_low - 1) / (f_low + n0 - 1),
        "ci_high": (f_high - 1) / (f_high + n0 - 1),
        "n0": n0, "f_statistic": f_obs,
    }


def icc_estimate(df: pd.DataFrame, outcome: str, cluster_col: str, alpha: float = 0.05) -> dict:
    """ICC from the REML null random-intercept model, with Searle's ANOVA-based interval."""
    work = _outcome_by_cluster(df, outcome, cluster_col)
    y, cluster = work[outcome].to_numpy(), work["_code"].to_numpy()
    fit = fit_random_intercept(y, np.ones((len(y), 1)), cluster)
    interval = searle_icc_interval(y, cluster, alpha)
    return {
        "icc": fit.icc, "ci_low": interval["ci_low"], "ci_high": interval["ci_high"],
        "ci_method": "Searle (1971) F interval with Donner's n0 (may fall below 0)",
        "sigma2_cluster": fit.tau2, "sigma2_resid": fit.sigma2,
        "total_sd": math.sqrt(fit.tau2 + fit.sigma2),
        "icc_anova": interval["icc_anova"], "n0": interval["n0"],
        "n_obs": len(y), "n_clusters": int(cluster.max()) + 1,
        "n_dropped": len(df) - len(y), "singular": fit.singular, "alpha": alpha,
    }


def null_model_total_sd(df: pd.DataFrame, outcome: str, cluster_col: str) -> float:
    """Total SD sqrt(sigma2_cluster + sigma2_resid) of the null multilevel model (EEF)."""
    return icc_estimate(df, outcome, cluster_col)["total_sd"]


def eef_effect_size(estimate: float, ci_low: float, ci_high: float, total_sd: float) -> dict:
    """EEF-style g: the adjusted coefficient and its CI divided by the null-model total SD."""
    if not total_sd > 0:
        raise AnalysisInputError(f"total SD must be positive, not {total_sd}")
    return {"effect_size": estimate / total_sd, "ci_low": ci_low / total_sd,
            "ci_high": ci_high / total_sd, "total_sd": total_sd}


def hedges_g_clustered(
    mean_difference: float,
    total_sd: float,
    n_treatment: int,
    n_control: int,
    mean_cluster_size: float,
    icc: float,
    alpha: float = 0.05,
) -> dict:
    """Hedges (2007) d_T for a two-level cluster-randomised design, its variance and CI.

    d_T = (diff / S_T) sqrt(1 - 2 (n - 1) rho / (N - 2)), with n the (mean) cluster size;
    V(d_T) = (N_T + N_C) / (N_T N_C) (1 + (n - 1) rho)
             + d_T^2 [(N - 2)(1 - rho)^2 + n (N - 2n) rho^2 + 2 (N - 2n) rho (1 - rho)]
               / [2 (N - 2) ((N - 2) - 2 (n - 1) rho)].
    Exact for equal cluster sizes; with unequal sizes the mean is an approximation.
    `g` applies the small-sample factor omega = 1 - 3 / (4 N - 9) (WWC) to d_T and its SE.
    """
    n_total = n_treatment + n_control
    n, rho = float(mean_cluster_size), float(icc)
    if not (0 <= rho < 1) or n < 1 or n_total <= 2 or total_sd <= 0:
        raise AnalysisInputError("need 0 <= icc < 1, cluster size >= 1, N > 2 and SD > 0")
    correction = 1 - 2 * (n - 1) * rho / (n_total - 2)
    d_t = mean_difference / total_sd * math.sqrt(correction)
    numerator = ((n_total - 2) * (1 - rho) ** 2 + n * (n_total - 2 * n) * rho**2
                 + 2 * (n_total - 2 * n) * rho * (1 - rho))
    denominator = 2 * (n_total - 2) * ((n_total - 2) - 2 * (n - 1) * rho)
    variance = (n_total / (n_treatment * n_control) * (1 + (n - 1) * rho)
                + d_t**2 * numerator / denominator)
    se = math.sqrt(variance)
    omega = 1 - 3 / (4 * n_total - 9)
    z = float(stats.norm.ppf(1 - alpha / 2))
    return {"d_t": d_t, "variance": variance, "se": se,
            "ci_low": d_t - z * se, "ci_high": d_t + z * se,
            "g": omega * d_t, "g_se": omega * se, "omega": omega}


def cox_index(p_treatment: float, p_control: float) -> float:
    """Cox index: (logit p_T - logit p_C) / 1.65, the WWC effect size for binary outcomes."""
    for p in (p_treatment, p_control):
        if not 0 < p < 1:
            raise AnalysisInputError(f"proportions must lie strictly between 0 and 1, not {p}")
    return (_logit(p_treatment) - _logit(p_control)) / COX_SCALE


def _logit(p: float) -> float:
    return math.log(p / (1 - p))

"""Population-averaged arm effects for binary and count outcomes by GEE.

statsmodels GEE with an exchangeable working correlation within clusters and the robust
(sandwich) covariance; optionally the Mancl & DeRouen (2001, Biometrics 57:126-134)
bias-corrected sandwich, whose residuals are inflated by (I - H_ii)^{-1}, with t inference
on G - p degrees of freedom, as recommended for few clusters (Li & Redden 2015, Stat Med).

Matching geepack (Halekoh, Hojsgaard & Yan 2006): geepack's moment estimators of the
scale and exchangeable correlation use no degrees-of-freedom correction (scale = sum r^2/N,
alpha = sum_{j<k} r_j r_k / (scale * pairs)), so the fit uses `ddof_scale=0`; statsmodels'
default (p) shifts alpha and hence the estimates by about 1e-5. Convergence is to a
score norm below 1e-10 (statsmodels' criterion), which reproduces
geepack's `geese.control(epsilon = 1e-10)` fits to about 1e-10 relative.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np
import pandas as pd
import statsmodels.genmod.api as sm  # not statsmodels.api: half the import time
from scipy import stats

from evalkit.analysis.data import (
    AnalysisColumns,
    AnalysisData,
    AnalysisInputError,
    build_design,
)
from evalkit.analysis.failures import GEEConvergenceError
from evalkit.analysis.results import Contrast, ModelResult, make_contrast

FAMILIES = {
    "binomial": (sm.families.Binomial, "odds ratio"),
    "poisson": (sm.families.Poisson, "rate ratio"),
}
SMALL_SAMPLE = {"none": "robust", "mancl-derouen": "bias_reduced"}
BOUNDARY = 1e-8   # a fitted probability or mean this close to 0 (or 1) signals separation


def fit_gee(
    df: pd.DataFrame,
    cols: AnalysisColumns,
    *,
    family: str = "binomial",
    small_sample: str = "none",
    alpha: float = 0.05,
    non_randomised_arms: Collection[str] = (),
    ctol: float = 1e-10,
    maxiter: int = 200,
) -> ModelResult:
    """Log odds / log rate ratios of each arm vs control from an exchangeable-correlation GEE.

    Raises GEEConvergenceError when the fit does not converge within `maxiter` iterations.
    """
    if family not in FAMILIES:
        raise AnalysisInputError(f"family must be one of {sorted(FAMILIES)}, not {family!r}")
    if small_sample not in SMALL_SAMPLE:
        raise AnalysisInputError(
            f"small_sample must be one of {sorted(SMALL_SAMPLE)}, not {small_sample!r}")
    data = build_design(df, cols)
    _check_outcome(data.y, family, cols.outcome)
    fit, model = _fit(data, family, SMALL_SAMPLE[small_sample], ctol, maxiter)

    n_params = data.X.shape[1]
    dof = float(data.n_clusters - n_params) if small_sample == "mancl-derouen" else None
    if dof is not None and dof <= 0:
        raise AnalysisInputError(
            f"Mancl-DeRouen t inference needs more clusters ({data.n_clusters}) than "
            f"parameters ({n_params})")
    non_randomised = set(map(str, non_randomised_arms))
    contrasts = [
        _contrast(arm, cols.control, fit.params[pos], fit.bse[pos], dof, alpha,
                  arm not in non_randomised, FAMILIES[family][1])
        for arm, pos in data.arm_index.items()
    ]
    return ModelResult(
        model="gee", outcome=cols.outcome, n_obs=data.n_obs, n_clusters=data.n_clusters,
        contrasts=contrasts, family=family, n_dropped=data.n_dropped,
        joint_test=_joint_wald(fit, list(data.arm_index.values()), dof),
        diagnostics={
            "link": "logit" if family == "binomial" else "log",
            "working_correlation": "exchangeable",
            "correlation": float(np.asarray(model.cov_struct.dep_params)),
            "scale": _pearson_scale(fit, model),
            "covariance": "Mancl-DeRouen bias-corrected sandwich"
            if small_sample == "mancl-derouen" else "robust sandwich",
            "df_method": "G - p" if dof is not None else "normal",
            "converged": bool(fit.converged), "iterations": _iterations(fit),
            "score_norm": float(fit.score_norm),
            "tolerance": ctol,
            "coefficients": dict(zip(data.columns, map(float, fit.params), strict=True)),
            **_warnings(data, fit, model, family),
        },
    )


def _warnings(data: AnalysisData, fit, model, family: str) -> dict[str, list[str]]:
    """{'warnings': [...]} when the fit shows separation, else nothing (key left out)."""
    mean = model.family.link.inverse(model.exog @ np.asarray(fit.params))
    found = separation_warnings(data, mean, family)
    return {"warnings": found} if found else {}


def _check_outcome(y: np.ndarray, family: str, outcome: str) -> None:
    """Binary outcomes must be 0/1 and counts non-negative whole numbers."""
    if family == "binomial" and not np.isin(y, (0.0, 1.0)).all():
        raise AnalysisInputError(f"binomial GEE needs a 0/1 outcome; {outcome!r} has others")
    if family == "poisson" and (y < 0).any():
        raise AnalysisInputError(f"poisson GEE needs non-negative counts; {outcome!r} has <0")
    if family == "poisson" and not np.all(y == np.round(y)):
        example = float(y[np.flatnonzero(y != np.round(y))[0]])
        raise AnalysisInputError(
            f"poisson GEE needs whole-number counts; {outcome!r} has {example:g}. For a rate "
            "or an average use a continuous model (--model mixed or cr2)")


def separation_warnings(data: AnalysisData, mean: np.ndarray, family: str) -> list[str]:
    """(Quasi-)separation: groups without events (or, binary, without non-events), or
    fitted means at the boundary; the estimates and SEs then rest on a near-singular fit."""
    y = data.y
    groups = [("arm", data.arm_labels)]
    if data.strata is not None:
        groups.append(("stratum", data.strata_labels[data.strata]))
    messages = []
    for kind, labels in groups:
        for label in sorted(set(labels)):
            rows = y[labels == label]
            if not rows.any():
                messages.append(f"{kind} {label!r} has no events (every outcome is 0)")
            elif family == "binomial" and rows.all():
                messages.append(f"{kind} {label!r} has only events (every outcome is 1)")
    at_edge = mean < BOUNDARY if family == "poisson" else (mean < BOUNDARY) | (mean > 1 - BOUNDARY)
    if at_edge.any():
        messages.append(f"{int(at_edge.sum())} fitted mean(s) at the boundary "
                        f"({'0' if family == 'poisson' else '0 or 1'})")
    if messages:
        messages = ["possible separation: " + "; ".join(messages) + ". The estimates and "
                    "their SEs rest on a near-singular fit and may be unreliable; consider "
                    "merging strata or an exact or randomisation-based analysis"]
    return messages


def _fit(data: AnalysisData, family: str, cov_type: str, ctol: float, maxiter: int):
    """Fit the GEE to geepack's tolerance and conventions; fail loudly if not converged."""
    model = sm.GEE(data.y, data.X, groups=data.cluster, family=FAMILIES[family][0](),
                   cov_struct=sm.cov_struct.Exchangeable())
    fit = model.fit(maxiter=maxiter, ctol=ctol, ddof_scale=0, cov_type=cov_type)
    # statsmodels flags convergence on the score norm even when the loop ran out (e.g. the
    # GLM start already solves the independence equations), so also require an early exit.
    if fit is None or not fit.converged or _iterations(fit) >= maxiter:
        raise GEEConvergenceError(
            f"GEE did not converge (score norm < {ctol:g}) within {maxiter} iterations; "
            "check for separation or sparse clusters, or raise maxiter")
    return fit, model


def _pearson_scale(fit, model) -> float:
    """Moment scale sum(r^2)/N as geepack reports it (statsmodels fixes it at 1 for these)."""
    mean = model.family.link.inverse(model.exog @ np.asarray(fit.params))
    resid = (model.endog - mean) / np.sqrt(model.family.variance(mean))
    return float(np.mean(resid**2))


def _iterations(fit) -> int:
    """Number of GEE updates taken (from statsmodels' fit history)."""
    history = getattr(fit, "fit_history", None) or {}
    return len(history.get("params", []))


def _contrast(arm, control, estimate, se, dof, alpha, randomised, ratio_name) -> Contrast:
    """Link-scale contrast with the exponentiated estimate and CI in `extra`."""
    contrast = make_contrast(arm, control, float(estimate), float(se), dof, alpha, randomised)
    contrast.extra = {
        "ratio": ratio_name,
        "exp_estimate": math.exp(contrast.estimate),
        "exp_ci_low": math.exp(contrast.ci_low),
        "exp_ci_high": math.exp(contrast.ci_high),
    }
    return contrast


def _joint_wald(fit, positions: list[int], dof: float | None) -> dict:
    """Wald test that all arm effects are zero (chi-square, or F on (q, G - p) with MD)."""
    beta = np.asarray(fit.params)[positions]
    cov = np.asarray(fit.cov_params())[np.ix_(positions, positions)]
    wald = float(beta @ np.linalg.solve(cov, beta))
    q = len(positions)
    if dof is None:
        return {"test": "Wald chi-square", "statistic": wald, "df": q,
                "p_value": float(stats.chi2.sf(wald, q)),
                "hypothesis": "all arm effects vs control are zero"}
    return {"test": "Wald F", "statistic": wald / q, "df1": q, "df2": dof,
            "p_value": float(stats.f.sf(wald / q, q, dof)),
            "hypothesis": "all arm effects vs control are zero"}

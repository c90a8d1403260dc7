"""Pre-specified subgroup (moderator) analyses: arm x moderator interactions, exploratory.

`y ~ arm + strata + covariates + moderator + arm:moderator` by OLS with CR2 errors and
Satterthwaite df (clubSandwich `coef_test`), as R's `lm(y ~ arm * moderator + ...)` codes it:
a numeric moderator enters as is, a text one as indicators of its non-reference levels.
Each interaction is one contrast ("Treatment x band[low]"); Holm-adjusted p-values across
them are in `extra["p_holm_exploratory"]`. They are exploratory, never confirmatory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from evalkit.analysis import cluster_robust as cr
from evalkit.analysis.data import AnalysisColumns, AnalysisInputError, build_design
from evalkit.analysis.multiplicity import holm_adjust
from evalkit.analysis.ols import least_squares
from evalkit.analysis.results import ModelResult, make_contrast


def fit_moderator(
    df: pd.DataFrame,
    cols: AnalysisColumns,
    *,
    moderator: str,
    alpha: float = 0.05,
    non_randomised_arms: Sequence[str] = (),
) -> ModelResult:
    """Arm x moderator interaction terms with CR2 SEs and Satterthwaite df."""
    if moderator in cols.covariates or moderator in (cols.arm, cols.strata):
        raise AnalysisInputError(f"moderator {moderator!r} is already in the model")
    data = build_design(df, cols.with_changes(covariates=(*cols.covariates, moderator)))
    levels = [j for j, name in enumerate(data.columns)
              if name == moderator or name.startswith(f"{moderator}[")]
    products, names = [], []
    for arm in data.arms:
        for j in levels:
            products.append(data.X[:, data.arm_index[arm]] * data.X[:, j])
            names.append(f"{arm} x {data.columns[j]}")
    fit = least_squares(np.column_stack([data.X, *products]), data.y,
                        [*data.columns, *names])
    pieces = cr.cr2_pieces(fit.X, fit.residuals, data.cluster, fit.bread)
    covariance = cr.sandwich(pieces)
    identity = np.eye(len(fit.columns))
    contrasts, warnings = [], []
    for name in names:
        if name not in fit.columns:
            warnings.append(f"interaction {name!r} is aliased (R reports NA): a subgroup "
                            "without both arms, or collinear with strata; not estimated")
            continue
        pos = fit.columns.index(name)
        arm = name.split(" x ")[0]
        contrasts.append(make_contrast(name, cols.control, fit.beta[pos],
                                       float(np.sqrt(covariance[pos, pos])),
                                       cr.satterthwaite_df(pieces, identity[pos]), alpha=alpha,
                                       randomised=arm not in set(non_randomised_arms)))
    if not contrasts:
        raise AnalysisInputError(f"no arm x {moderator} interaction can be estimated")
    holm = holm_adjust({c.arm: c.p_value for c in contrasts if c.randomised})
    for contrast in contrasts:
        contrast.extra = {"moderator": moderator, "p_holm_exploratory": holm.get(contrast.arm)}
    return ModelResult(
        model=f"cr2 x {moderator}", outcome=cols.outcome, n_obs=data.n_obs,
        n_clusters=data.n_clusters, contrasts=contrasts, n_dropped=data.n_dropped,
        diagnostics={"analysis": "exploratory subgroup (moderator) analysis",
                     "vcov": "CR2 (Bell-McCaffrey)",
                     "df_method": "Satterthwaite (Pustejovsky-Tipton)",
                     "holm": "across this moderator's randomised interaction terms",
                     "warnings": warnings, "aliased_columns": fit.aliased,
                     "coefficients": dict(zip(fit.columns, map(float, fit.beta), strict=True))},
    )

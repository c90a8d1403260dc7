"""Covariate balance between groups: counts, means and standardised mean differences."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def numeric_covariates(units: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Numeric columns of a unit table usable as balance covariates."""
    return [
        c for c in units.columns
        if c not in exclude and not c.startswith("p_") and pd.api.types.is_numeric_dtype(units[c])
    ]


def standardised_difference(treated: np.ndarray, control: np.ndarray) -> float:
    """(mean_t - mean_c) / sqrt((var_t + var_c) / 2), sample variances; NaN when undefined."""
    if len(treated) < 2 or len(control) < 2:
        return float("nan")
    pooled = np.sqrt((np.var(treated, ddof=1) + np.var(control, ddof=1)) / 2)
    return float((treated.mean() - control.mean()) / pooled) if pooled > 0 else 0.0


def balance_table(
    allocation: pd.DataFrame,
    covariates: Sequence[str],
    groups: Sequence[str],
    control: str,
    staff_counts: pd.Series | None = None,
) -> pd.DataFrame:
    """One row per group: units, staff, mean of each covariate and its SMD against control."""
    rows = []
    control_rows = allocation[allocation["group"] == control]
    for group in groups:
        members = allocation[allocation["group"] == group]
        row: dict[str, object] = {"group": group, "units": len(members)}
        if staff_counts is not None:
            row["staff"] = int(staff_counts.get(group, 0))
        for covariate in covariates:
            row[f"mean_{covariate}"] = float(members[covariate].mean()) if len(members) else None
            row[f"smd_{covariate}"] = (
                None if group == control else standardised_difference(
                    members[covariate].to_numpy(float), control_rows[covariate].to_numpy(float)
                )
            )
        rows.append(row)
    return pd.DataFrame(rows)


def batch_smd(assignments: np.ndarray, values: np.ndarray, arm: int, control: int) -> np.ndarray:
    """SMD of each covariate, arm vs control, for every candidate (batch x covariates)."""
    in_arm = (assignments == arm).astype(float)
    in_control = (assignments == control).astype(float)
    mean_a, var_a = _batch_moments(in_arm, values)
    mean_c, var_c = _batch_moments(in_control, values)
    pooled = np.sqrt((var_a + var_c) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pooled > 0, (mean_a - mean_c) / pooled, 0.0)


def _batch_moments(membership: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    count = membership.sum(axis=1, keepdims=True)
    mean = membership @ values / count
    sum_squares = membership @ values**2
    variance = (sum_squares - count * mean**2) / np.maximum(count - 1, 1)
    return mean, np.maximum(variance, 0.0)


def batch_mahalanobis(
    assignments: np.ndarray, values: np.ndarray, arm: int, control: int
) -> np.ndarray:
    """Morgan-Rubin (2012) Mahalanobis distance between arm and control means per candidate,
    using the covariance of the covariates over all units in the candidate pool."""
    covariance = np.atleast_2d(np.cov(values, rowvar=False))
    inverse = np.linalg.pinv(covariance)
    in_arm = (assignments == arm).astype(float)
    in_control = (assignments == control).astype(float)
    n_a, n_c = in_arm.sum(1), in_control.sum(1)
    difference = in_arm @ values / n_a[:, None] - in_control @ values / n_c[:, None]
    quadratic = np.einsum("bi,ij,bj->b", difference, inverse, difference)
    return quadratic / (1 / n_a + 1 / n_c)

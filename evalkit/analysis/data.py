"""Turn an analysis data frame into the arrays every estimator shares.

Design matrix columns, in order: intercept, one dummy per non-control arm, one dummy per
stratum but the first (sorted), then covariates. Rows with a missing outcome, arm, cluster,
stratum or covariate are dropped (complete cases) and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd


class AnalysisInputError(ValueError):
    """The analysis data cannot be used as asked (missing column, no control rows, ...)."""


@dataclass(frozen=True)
class AnalysisColumns:
    """Which columns hold the outcome, arm, cluster, strata and covariates; the control arm.

    Every estimator takes one of these right after the data frame.
    """

    outcome: str
    arm: str = "arm"
    cluster: str = "pdu"
    strata: str | None = None
    covariates: tuple[str, ...] = field(default=())
    control: str = "Control"

    def __post_init__(self) -> None:
        object.__setattr__(self, "covariates", tuple(self.covariates))

    @property
    def needed(self) -> list[str]:
        """Every column the model reads: outcome, arm, cluster, strata, covariates."""
        return [self.outcome, self.arm, self.cluster,
                *([self.strata] if self.strata else []), *self.covariates]

    def with_changes(self, **changes: object) -> AnalysisColumns:
        """A copy with some fields replaced (e.g. another outcome or extra covariates)."""
        return replace(self, **changes)


@dataclass
class AnalysisData:
    """Arrays for one outcome under one design, after complete-case filtering."""

    frame: pd.DataFrame          # the complete-case rows used
    y: np.ndarray                # outcome, float
    X: np.ndarray                # design matrix (n x p)
    columns: list[str]           # names of X's columns
    arms: list[str]              # non-control arms, in column order
    arm_index: dict[str, int]    # arm -> column of X holding its dummy
    control: str
    cluster: np.ndarray          # integer cluster codes 0..G-1
    cluster_labels: np.ndarray   # label of each cluster code
    strata: np.ndarray | None    # integer stratum codes, or None
    strata_labels: np.ndarray | None
    arm_labels: np.ndarray       # arm of each row (strings)
    n_dropped: int               # rows dropped for missing values

    @property
    def n_obs(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_clusters(self) -> int:
        return int(self.cluster_labels.shape[0])


def _require_columns(df: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AnalysisInputError(
            f"column(s) {', '.join(repr(c) for c in missing)} not found; "
            f"available: {', '.join(map(str, df.columns))}"
        )


def ordered_arms(values: pd.Series, control: str) -> list[str]:
    """Non-control arms in a stable order (sorted), checking the control arm is present."""
    present = sorted({str(v) for v in values.dropna().unique()})
    if control not in present:
        raise AnalysisInputError(
            f"control arm {control!r} not found in the arm column; arms present: {present}"
        )
    return [a for a in present if a != control]


def build_design(
    df: pd.DataFrame, cols: AnalysisColumns, *, arms: Sequence[str] | None = None
) -> AnalysisData:
    """Complete-case arrays for `outcome ~ arm + strata + covariates` clustered by cluster.

    `arms` restricts the data to those arms (plus control), e.g. for a two-arm contrast.
    """
    outcome, arm_col, control = cols.outcome, cols.arm, cols.control
    needed = cols.needed
    _require_columns(df, needed)
    work = df.loc[:, list(dict.fromkeys(needed))].copy()
    work[arm_col] = work[arm_col].astype("string")
    if arms is not None:
        keep = {*map(str, arms), control}
        work = work[work[arm_col].isin(keep)]
    complete = work.notna().all(axis=1)
    n_dropped = int((~complete).sum())
    work = work[complete].reset_index(drop=True)
    if work.empty:
        raise AnalysisInputError(f"no complete rows for outcome {outcome!r}")
    for column in [outcome, *cols.covariates]:
        work[column] = pd.to_numeric(work[column], errors="raise").astype(float)
    return _assemble(work, cols, n_dropped)


def _assemble(work: pd.DataFrame, cols: AnalysisColumns, n_dropped: int) -> AnalysisData:
    """Design matrix blocks (intercept, arm dummies, strata dummies, covariates) and codes."""
    control = cols.control
    arm_names = ordered_arms(work[cols.arm], control)
    arm_values = work[cols.arm].astype(str).to_numpy()
    blocks = [np.ones((len(work), 1))]
    columns = ["(Intercept)"]
    arm_index: dict[str, int] = {}
    for arm in arm_names:
        arm_index[arm] = len(columns)
        blocks.append((arm_values == arm).astype(float)[:, None])
        columns.append(f"arm[{arm}]")

    strata_codes = strata_labels = None
    if cols.strata:
        strata_codes, strata_labels = _codes(work[cols.strata])
        for level in range(1, len(strata_labels)):
            blocks.append((strata_codes == level).astype(float)[:, None])
            columns.append(f"strata[{strata_labels[level]}]")
    for column in cols.covariates:
        blocks.append(work[column].to_numpy(float)[:, None])
        columns.append(column)

    cluster_codes, cluster_labels = _codes(work[cols.cluster])
    return AnalysisData(
        frame=work, y=work[cols.outcome].to_numpy(float), X=np.hstack(blocks), columns=columns,
        arms=arm_names, arm_index=arm_index, control=control, cluster=cluster_codes,
        cluster_labels=cluster_labels, strata=strata_codes, strata_labels=strata_labels,
        arm_labels=arm_values, n_dropped=n_dropped,
    )


def _codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes over the sorted distinct labels (as strings, so mixed types sort)."""
    labels = values.astype(str).to_numpy()
    uniques, codes = np.unique(labels, return_inverse=True)
    return codes.astype(np.int64), uniques

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
    work[outcome] = pd.to_numeric(work[outcome], errors="raise").astype(float)
    for column in cols.covariates:
        if not is_categorical(work[column]):
            work[column] = pd.to_numeric(work[column], errors="raise").astype(float)
    return _assemble(work, cols, n_dropped)


def is_categorical(values: pd.Series) -> bool:
    """A text column none of whose values is a number: a categorical covariate."""
    present = values.dropna()
    if pd.api.types.is_numeric_dtype(present) or present.empty:
        return False
    return bool(pd.to_numeric(present, errors="coerce").isna().all())


def categorical_levels(df: pd.DataFrame, covariates: Sequence[str]) -> dict[str, list[str]]:
    """Sorted levels of each categorical covariate; the first is the reference level."""
    return {c: sorted(df[c].dropna().astype(str).unique()) for c in covariates
            if is_categorical(df[c])}


def _covariate_blocks(work: pd.DataFrame, cols: AnalysisColumns
                      ) -> tuple[list[np.ndarray], list[str]]:
    """One column per numeric covariate; indicators for a categorical one's non-reference
    levels (sorted, as R's factor contrasts), named `covariate[level]`."""
    blocks, names = [], []
    for column in cols.covariates:
        if is_categorical(work[column]):
            values = work[column].astype(str).to_numpy()
            for level in sorted(set(values))[1:]:
                blocks.append((values == level).astype(float)[:, None])
                names.append(f"{column}[{level}]")
        else:
            blocks.append(work[column].to_numpy(float)[:, None])
            names.append(column)
    return blocks, names


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
    covariate_blocks, covariate_names = _covariate_blocks(work, cols)
    blocks += covariate_blocks
    columns += covariate_names

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


def check_cluster_nesting(df: pd.DataFrame, cols: AnalysisColumns, *,
                          across_strata: bool = False, across_arms: bool = False) -> None:
    """A cluster must sit in one arm and one stratum; the error names the first that does not.

    `across_arms` allows arms within clusters (staff-level allocation, PDU clusters);
    `across_strata` allows clusters that span strata when the design really has them.
    """
    checks = [] if across_arms else [(cols.arm, "arm", "--allow-clusters-across-arms "
                                      "(only if staff, not clusters, were randomised)")]
    if cols.strata and not across_strata:
        checks.append((cols.strata, "stratum", "--allow-clusters-across-strata (only if "
                       "the design really has clusters that span strata)"))
    for column, kind, option in checks:
        work = df[[cols.cluster, column]].dropna().astype(str)
        counts = work.groupby(cols.cluster, sort=True)[column].nunique()   # vectorised
        if not (counts > 1).any():
            continue
        spread = work.groupby(cols.cluster, sort=True)[column].unique()
        mixed = spread[spread.map(len) > 1]
        if len(mixed):
            cluster, values = mixed.index[0], sorted(mixed.iloc[0])
            more = f" (and {len(mixed) - 1} other cluster(s))" if len(mixed) > 1 else ""
            raise AnalysisInputError(
                f"cluster {cluster!r} of column {cols.cluster!r} is in more than one {kind} "
                f"({', '.join(map(repr, values))}) in column {column!r}{more}: each cluster "
                f"must be in one {kind}. Fix the data, or pass {option}")

"""Design-based difference in means for a cluster-randomised, blocked design.

Follows estimatr's `difference_in_means(y ~ arm, blocks =, clusters =)`, one arm versus control
at a time, using only blocks holding both arms:
- blocked: block estimates weighted by block size, SE = sqrt(sum w_b^2 se_b^2)
  (Gerber & Green 2012, eq. 3.10 and p. 74 fn. 17); each block's estimate and SE come from a
  CR2 regression on [1, arm] (Bell & McCaffrey 2002); df = clusters - 2 x blocks;
- matched pairs (some block has exactly two clusters): Imai, King & Nall (2009, eq. 6),
  df = blocks - 1;
- no blocks: CR2 regression on [1, arm] with its Satterthwaite df.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evalkit.analysis import cluster_robust as cr
from evalkit.analysis.data import AnalysisColumns, AnalysisInputError, ordered_arms
from evalkit.analysis.results import Contrast, ModelResult, make_contrast


@dataclass
class ArmEstimate:
    """One arm-vs-control difference in means and how it was obtained."""

    estimate: float
    se: float
    df: float
    design: str
    n_obs: int
    n_clusters: int
    n_blocks: int | None
    warnings: list[str] = field(default_factory=list)


def _cr2_difference(
    y: np.ndarray, treated: np.ndarray, cluster: np.ndarray
) -> tuple[float, float, float]:
    """Difference in means with its CR2 SE and Satterthwaite df (estimatr's clustered path)."""
    X = np.column_stack([np.ones_like(y), treated.astype(float)])
    _, codes = np.unique(cluster, return_inverse=True)
    bread = cr.bread_matrix(X)
    beta = bread @ (X.T @ y)
    pieces = cr.cr2_pieces(X, y - X @ beta, codes, bread)
    se = float(np.sqrt(cr.sandwich(pieces)[1, 1]))
    return float(beta[1]), se, cr.satterthwaite_df(pieces, np.array([0.0, 1.0]))


def _single_cluster_warnings(
    block: str | None, arm_clusters: pd.Series, pair_matched: bool
) -> list[str]:
    """Messages for arms represented by one cluster only, saying what estimatr then does."""
    where = "the data" if block is None else f"block {block!r}"
    messages = []
    for arm, n in arm_clusters.items():
        if n != 1:
            continue
        if pair_matched:
            consequence = ("estimatr treats the design as matched pairs and uses the "
                           "Imai-King-Nall variance for every block, with df = blocks - 1")
        else:
            consequence = ("estimatr still fits CR2 there, but that cluster's residuals sum "
                           "to zero so it adds nothing to the variance: the SE reflects only "
                           "the other arm's clusters and is likely too small")
        messages.append(f"{where}: arm {arm!r} has a single cluster; {consequence}")
    return messages


def _check_nesting(frame: pd.DataFrame, has_blocks: bool) -> None:
    """Arm must be constant within cluster; clusters must sit within one block."""
    per_cluster = frame.groupby("cluster", sort=False)
    if (per_cluster["arm"].nunique() > 1).any():
        raise AnalysisInputError("all rows of a cluster must be in the same arm")
    if has_blocks and (per_cluster["block"].nunique() > 1).any():
        raise AnalysisInputError("every cluster must be contained in a single block")


def _blocked_estimate(frame: pd.DataFrame, arm: str) -> ArmEstimate:
    """estimatr's blocked (or matched-pair) clustered estimator over blocks with both arms."""
    blocks = sorted(frame["block"].unique())
    clusters_per_block = frame.groupby("block")["cluster"].nunique()
    pair_matched = bool((clusters_per_block == 2).any())
    warnings: list[str] = []
    if pair_matched and (clusters_per_block > 2).any():
        warnings.append("some blocks have two clusters and others more: estimatr uses the "
                        "matched-pairs variance estimator for all blocks")
    sizes, estimates, ses = [], [], []
    for block in blocks:
        rows = frame[frame["block"] == block]
        treated = (rows["arm"] == arm).to_numpy()
        warnings += _single_cluster_warnings(
            block, rows.groupby("arm")["cluster"].nunique(), pair_matched)
        y = rows["y"].to_numpy(float)
        sizes.append(len(rows))
        if pair_matched:
            estimates.append(y[treated].mean() - y[~treated].mean())
        else:
            estimate, se, _ = _cr2_difference(y, treated, rows["cluster"].to_numpy())
            estimates.append(estimate)
            ses.append(se)
    sizes_arr, est_arr = np.asarray(sizes, float), np.asarray(estimates)
    n_total, n_blocks = sizes_arr.sum(), len(blocks)
    estimate = float(np.sum(est_arr * sizes_arr) / n_total)
    n_clusters = int(frame["cluster"].nunique())
    if pair_matched:
        spread = sizes_arr * est_arr - n_total * estimate / n_blocks
        se = float(np.sqrt(n_blocks / ((n_blocks - 1) * n_total**2) * np.sum(spread**2)))
        df, design = float(n_blocks - 1), "Matched-pair clustered"
    else:
        se = float(np.sqrt(np.sum(np.asarray(ses) ** 2 * (sizes_arr / n_total) ** 2)))
        df, design = float(n_clusters - 2 * n_blocks), "Block-clustered"
    return ArmEstimate(estimate, se, df, design, int(n_total), n_clusters, n_blocks, warnings)


def _unblocked_estimate(frame: pd.DataFrame, arm: str) -> ArmEstimate:
    """Clustered, unblocked difference in means (CR2 with Satterthwaite df)."""
    treated = (frame["arm"] == arm).to_numpy()
    estimate, se, df = _cr2_difference(
        frame["y"].to_numpy(float), treated, frame["cluster"].to_numpy())
    warnings = _single_cluster_warnings(
        None, frame.groupby("arm")["cluster"].nunique(), pair_matched=False)
    return ArmEstimate(estimate, se, df, "Clustered", len(frame),
                       int(frame["cluster"].nunique()), None, warnings)


def _complete_rows(df: pd.DataFrame, cols: AnalysisColumns) -> tuple[pd.DataFrame, int]:
    """Rows with outcome, arm, cluster (and block) present, renamed to y/arm/cluster/block."""
    names = {cols.outcome: "y", cols.arm: "arm", cols.cluster: "cluster"}
    if cols.strata:
        names[cols.strata] = "block"
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise AnalysisInputError(f"column(s) {missing} not found")
    frame = df.loc[:, list(names)].rename(columns=names)
    complete = frame.notna().all(axis=1)
    frame = frame[complete].copy()
    frame["y"] = pd.to_numeric(frame["y"], errors="raise").astype(float)
    for column in ("arm", "cluster", "block"):
        if column in frame:
            frame[column] = frame[column].astype(str)
    return frame, int((~complete).sum())


def difference_in_means(
    df: pd.DataFrame,
    cols: AnalysisColumns,
    *,
    alpha: float = 0.05,
    non_randomised_arms: Sequence[str] = (),
) -> ModelResult:
    """Each arm vs control by estimatr's blocked-and-clustered difference in means.

    Unadjusted by design: covariates in `cols` are an error, not silently ignored.
    """
    if cols.covariates:
        raise AnalysisInputError("the difference in means takes no covariates (got "
                                 f"{', '.join(cols.covariates)}); use cr2 or mixed to adjust")
    control, strata_col = cols.control, cols.strata
    frame, n_dropped = _complete_rows(df, cols)
    arms = ordered_arms(frame["arm"], control)
    _check_nesting(frame, strata_col is not None)
    contrasts: list[Contrast] = []
    warnings: list[str] = []
    dropped_blocks: dict[str, list[str]] = {}
    used = pd.Series(False, index=frame.index)
    for arm in arms:
        pair = frame[frame["arm"].isin([arm, control])]
        if strata_col:
            arms_in_block = pair.groupby("block")["arm"].nunique()
            dropped_blocks[arm] = sorted(arms_in_block.index[arms_in_block < 2])
            pair = pair[pair["block"].isin(arms_in_block.index[arms_in_block == 2])]
            if pair.empty:
                warnings.append(f"arm {arm!r}: no block holds both {arm!r} and {control!r}; "
                                "no estimate")
                continue
            result = _blocked_estimate(pair, arm)
        else:
            result = _unblocked_estimate(pair, arm)
        used[pair.index] = True
        warnings += [f"arm {arm!r}: {message}" for message in result.warnings]
        contrast = make_contrast(arm, control, result.estimate, result.se, result.df, alpha,
                                 randomised=arm not in set(non_randomised_arms))
        contrast.extra = {"design": result.design, "n_obs_contrast": result.n_obs,
                          "n_clusters_contrast": result.n_clusters,
                          "n_blocks": result.n_blocks}
        contrasts.append(contrast)
    if not contrasts:
        raise AnalysisInputError("no arm could be compared with control")
    return ModelResult(
        model="dim", outcome=cols.outcome, n_obs=int(used.sum()),
        n_clusters=int(frame.loc[used, "cluster"].nunique()), contrasts=contrasts,
        n_dropped=n_dropped,
        diagnostics={"blocks_without_both_arms": dropped_blocks, "warnings": warnings},
    )

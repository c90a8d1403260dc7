"""Attrition against the What Works Clearinghouse boundaries, and CONSORT flow counts.

Cluster trial convention (WWC Standards Handbook v4.1 / v5.0, cluster-level assignment):
a cluster is lost when none of its members has the outcome; cluster-level attrition is
judged first, then individual-level attrition among the members of retained clusters.
Overall attrition is the loss in the two groups compared (arm + control); differential is
the absolute difference of their loss rates.

Boundaries: WWC Standards Handbook v4.0 Table II.1 (unchanged in v4.1 / v5.0), "highest
differential attrition for a sample to maintain low attrition, by overall attrition",
cautious and optimistic boundaries, in percentage points for overall attrition 0-57%.
Between the integer rows we take the smaller of the two neighbouring maxima (conservative);
above 57% overall attrition both verdicts are "high" (the cautious boundary reaches zero
there; we do not encode the optimistic rows beyond 57%, so this is conservative too).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from evalkit.analysis.data import AnalysisColumns, AnalysisInputError, ordered_arms

# Max differential attrition (percentage points) by overall attrition 0, 1, ..., 57 (%).
CAUTIOUS_BOUNDARY = (
    5.7, 5.8, 5.9, 5.9, 6.0, 6.1, 6.2, 6.3, 6.3, 6.3, 6.3, 6.2, 6.2, 6.1, 6.0, 5.9, 5.9, 5.8,
    5.7, 5.5, 5.4, 5.3, 5.2, 5.1, 4.9, 4.8, 4.7, 4.5, 4.4, 4.3, 4.1, 4.0, 3.8, 3.6, 3.5, 3.3,
    3.2, 3.1, 2.9, 2.8, 2.6, 2.5, 2.3, 2.1, 2.0, 1.8, 1.6, 1.5, 1.3, 1.2, 1.0, 0.9, 0.7, 0.6,
    0.4, 0.3, 0.2, 0.0,
)
OPTIMISTIC_BOUNDARY = (
    10.0, 10.1, 10.2, 10.3, 10.4, 10.5, 10.7, 10.8, 10.9, 10.9, 10.9, 10.9, 10.9, 10.9, 10.8,
    10.8, 10.7, 10.6, 10.5, 10.3, 10.2, 10.0, 9.9, 9.7, 9.5, 9.4, 9.2, 9.0, 8.8, 8.6, 8.4, 8.2,
    8.0, 7.8, 7.6, 7.4, 7.2, 7.0, 6.7, 6.5, 6.3, 6.0, 5.8, 5.6, 5.3, 5.1, 4.9, 4.6, 4.4, 4.2,
    3.9, 3.7, 3.5, 3.2, 3.0, 2.8, 2.6, 2.3,
)
BOUNDARIES = {"cautious": CAUTIOUS_BOUNDARY, "optimistic": OPTIMISTIC_BOUNDARY}


def max_differential_attrition(overall: float, boundary: str = "cautious") -> float:
    """Largest differential attrition (proportion) still 'low' at this overall attrition."""
    table = BOUNDARIES[boundary]
    percent = 100 * overall
    if math.isnan(percent) or percent < 0:
        return math.nan
    if percent > len(table) - 1:
        return -math.inf  # beyond the table: no differential attrition counts as low
    below, above = math.floor(percent), math.ceil(percent)
    return min(table[below], table[above]) / 100


def attrition_verdict(overall: float, differential: float, boundary: str = "cautious") -> str:
    """'low' when differential attrition is within the WWC boundary at this overall rate."""
    allowed = max_differential_attrition(overall, boundary)
    return "low" if differential <= allowed + 1e-12 else "high"


def attrition_summary(
    df: pd.DataFrame,
    cols: AnalysisColumns,
    *,
    allocated_clusters: Mapping[str, str] | pd.Series | None = None,
) -> pd.DataFrame:
    """Overall and differential attrition per arm vs control, clusters then individuals.

    `allocated_clusters` (cluster -> arm) adds allocated clusters absent from `df` (e.g.
    withdrawn before any staff were listed); they count as lost clusters.
    """
    clusters = _cluster_status(df, cols, allocated_clusters)
    retained = set(clusters.index[~clusters["lost"]])
    people = df.loc[df[cols.cluster].astype(str).isin(retained)]
    individuals = pd.DataFrame({"arm": people[cols.arm].astype(str).to_numpy(),
                                "lost": people[cols.outcome].isna().to_numpy()})
    rows = []
    for arm in ordered_arms(clusters["arm"], cols.control):
        for level, units in (("cluster", clusters), ("individual", individuals)):
            rows.append(_compare(level, arm, cols.control, units))
    return pd.DataFrame(rows)


def _cluster_status(df: pd.DataFrame, cols: AnalysisColumns,
                    allocated_clusters: Mapping[str, str] | pd.Series | None) -> pd.DataFrame:
    """Per cluster: its arm and whether it was lost (no member with the outcome)."""
    outcome, arm_col, cluster_col = cols.outcome, cols.arm, cols.cluster
    for column in (outcome, arm_col, cluster_col):
        if column not in df.columns:
            raise AnalysisInputError(f"column {column!r} not found")
    work = pd.DataFrame({"cluster": df[cluster_col].astype(str),
                         "arm": df[arm_col].astype(str),
                         "observed": df[outcome].notna()})
    grouped = work.groupby("cluster", sort=True)
    if (grouped["arm"].nunique() > 1).any():
        raise AnalysisInputError(f"{arm_col!r} varies within a cluster")
    table = pd.DataFrame({"arm": grouped["arm"].first(), "lost": ~grouped["observed"].any()})
    if allocated_clusters is not None:
        allocated = pd.Series(allocated_clusters, dtype="object")
        allocated.index = allocated.index.astype(str)
        allocated = allocated.astype(str)
        clash = [c for c in table.index.intersection(allocated.index)
                 if table.at[c, "arm"] != allocated[c]]
        if clash:
            raise AnalysisInputError(f"allocated arm disagrees with the data for {clash}")
        missing = allocated.index.difference(table.index)
        extra = pd.DataFrame({"arm": allocated[missing], "lost": True}, index=missing)
        table = pd.concat([table, extra]).sort_index()
    return table


def _compare(level: str, arm: str, control: str, units: pd.DataFrame) -> dict:
    """Attrition of arm vs control on one level, with both WWC verdicts."""
    counts = {}
    for group in (arm, control):
        lost = units.loc[units["arm"] == group, "lost"]
        counts[group] = (len(lost), int(lost.sum()))
    (n_arm, lost_arm), (n_ctl, lost_ctl) = counts[arm], counts[control]
    rate_arm = lost_arm / n_arm if n_arm else math.nan
    rate_ctl = lost_ctl / n_ctl if n_ctl else math.nan
    overall = (lost_arm + lost_ctl) / (n_arm + n_ctl) if n_arm + n_ctl else math.nan
    differential = abs(rate_arm - rate_ctl)
    row = {
        "level": level, "arm": arm, "versus": control,
        "allocated_arm": n_arm, "lost_arm": lost_arm, "attrition_arm": rate_arm,
        "allocated_control": n_ctl, "lost_control": lost_ctl, "attrition_control": rate_ctl,
        "overall": overall, "differential": differential,
    }
    for boundary in BOUNDARIES:
        row[f"max_differential_{boundary}"] = max_differential_attrition(overall, boundary)
        row[f"verdict_{boundary}"] = attrition_verdict(overall, differential, boundary)
    return row


def consort_flow(
    df: pd.DataFrame,
    cols: AnalysisColumns,
    *,
    allocated_clusters: Mapping[str, str] | pd.Series | None = None,
) -> pd.DataFrame:
    """CONSORT cluster-trial flow per arm: allocated, lost to follow-up, excluded, analysed.

    Lost = no outcome (a cluster with no outcome at all is a lost cluster); excluded = has
    the outcome but misses a covariate; analysed = complete on outcome and covariates.
    Individuals of allocated clusters absent from `df` are unknown and not counted.
    """
    clusters = _cluster_status(df, cols, allocated_clusters)
    has_outcome = df[cols.outcome].notna()
    covariates = list(cols.covariates)
    complete = has_outcome & df[covariates].notna().all(axis=1) if covariates \
        else has_outcome
    analysed_clusters = set(df.loc[complete, cols.cluster].astype(str))
    arms = df[cols.arm].astype(str)
    rows = []
    for arm in sorted(clusters["arm"].unique()):
        in_arm = (arms == arm).to_numpy()
        arm_clusters = clusters[clusters["arm"] == arm]
        rows.append({
            "arm": arm,
            "clusters_allocated": len(arm_clusters),
            "individuals_allocated": int(in_arm.sum()),
            "clusters_lost": int(arm_clusters["lost"].sum()),
            "individuals_lost": int((in_arm & ~has_outcome.to_numpy()).sum()),
            "individuals_excluded": int((in_arm & has_outcome.to_numpy()
                                         & ~complete.to_numpy()).sum()),
            "clusters_analysed": len(analysed_clusters.intersection(arm_clusters.index)),
            "individuals_analysed": int((in_arm & complete.to_numpy()).sum()),
        })
    return pd.DataFrame(rows)

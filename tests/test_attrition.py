"""Attrition (WWC boundaries) and CONSORT flow counts on small hand-built trials."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evalkit.analysis.attrition import (
    attrition_summary,
    attrition_verdict,
    consort_flow,
    max_differential_attrition,
)
from evalkit.analysis.data import AnalysisColumns


def trial(spec):
    """spec: list of (cluster, arm, n_members, n_missing_outcome, n_missing_x)."""
    rows = []
    for cluster, arm, n, missing_y, missing_x in spec:
        for i in range(n):
            rows.append({"pdu": cluster, "arm": arm,
                         "y": np.nan if i < missing_y else float(i),
                         "x1": np.nan if missing_y <= i < missing_y + missing_x else 1.0})
    return pd.DataFrame(rows)


SPEC = [
    ("T1", "Treatment", 10, 2, 1), ("T2", "Treatment", 10, 0, 0), ("T3", "Treatment", 5, 5, 0),
    ("C1", "Control", 10, 1, 0), ("C2", "Control", 10, 1, 2), ("C3", "Control", 10, 0, 0),
    ("C4", "Control", 8, 0, 0),
]


def test_published_rows_of_the_boundary_tables():
    # WWC Standards Handbook v4.0 Table II.1 rows: (overall %, cautious, optimistic)
    for overall, cautious, optimistic in [(0, 5.7, 10.0), (10, 6.3, 10.9), (30, 4.1, 8.4),
                                          (50, 1.0, 3.9)]:
        assert max_differential_attrition(overall / 100, "cautious") == pytest.approx(
            cautious / 100)
        assert max_differential_attrition(overall / 100, "optimistic") == pytest.approx(
            optimistic / 100)


def test_boundary_between_rows_is_the_smaller_neighbour():
    # between 18% (5.7) and 19% (5.5) the cautious maximum is 5.5
    assert max_differential_attrition(0.185, "cautious") == pytest.approx(0.055)
    # rising part of the table: between 0% (10.0) and 1% (10.1) take 10.0
    assert max_differential_attrition(0.005, "optimistic") == pytest.approx(0.100)
    assert max_differential_attrition(0.70, "optimistic") == -math.inf


def test_verdicts_on_either_side_of_the_boundary():
    assert attrition_verdict(0.20, 0.054, "cautious") == "low"
    assert attrition_verdict(0.20, 0.055, "cautious") == "high"
    assert attrition_verdict(0.20, 0.055, "optimistic") == "low"
    assert attrition_verdict(0.60, 0.0, "optimistic") == "high"


def test_cluster_and_individual_attrition():
    summary = attrition_summary(trial(SPEC), AnalysisColumns("y", "arm", "pdu")).set_index("level")
    cluster = summary.loc["cluster"]
    assert (cluster["allocated_arm"], cluster["lost_arm"]) == (3, 1)  # T3 has no outcome
    assert (cluster["allocated_control"], cluster["lost_control"]) == (4, 0)
    assert cluster["overall"] == pytest.approx(1 / 7)
    assert cluster["differential"] == pytest.approx(1 / 3)
    assert cluster["verdict_cautious"] == cluster["verdict_optimistic"] == "high"
    person = summary.loc["individual"]  # within retained clusters T1, T2, C1..C4
    assert (person["allocated_arm"], person["lost_arm"]) == (20, 2)
    assert (person["allocated_control"], person["lost_control"]) == (38, 2)
    assert person["overall"] == pytest.approx(4 / 58)
    assert person["differential"] == pytest.approx(abs(2 / 20 - 2 / 38))
    assert person["verdict_cautious"] == "low"  # 4.7 points at 6.9% overall (max 6.2)


def test_allocated_clusters_absent_from_data_count_as_lost():
    allocated = {"T1": "Treatment", "T2": "Treatment", "T3": "Treatment", "T4": "Treatment",
                 "C1": "Control", "C2": "Control", "C3": "Control", "C4": "Control"}
    summary = attrition_summary(trial(SPEC), AnalysisColumns("y", "arm", "pdu"),
                                allocated_clusters=allocated)
    cluster = summary.set_index("level").loc["cluster"]
    assert (cluster["allocated_arm"], cluster["lost_arm"]) == (4, 2)
    flow = consort_flow(trial(SPEC), AnalysisColumns("y", "arm", "pdu"),
                        allocated_clusters=allocated)
    assert flow.set_index("arm").loc["Treatment", "clusters_allocated"] == 4


def test_no_attrition_is_low_under_both_boundaries():
    complete = trial([("T1", "Treatment", 5, 0, 0), ("C1", "Control", 5, 0, 0)])
    summary = attrition_summary(complete, AnalysisColumns("y", "arm", "pdu"))
    assert (summary["overall"] == 0).all() and (summary["differential"] == 0).all()
    assert set(summary["verdict_cautious"]) == set(summary["verdict_optimistic"]) == {"low"}


def test_consort_flow_counts_add_up():
    df = trial(SPEC)
    flow = consort_flow(df, AnalysisColumns("y", "arm", "pdu", covariates=["x1"])).set_index("arm")
    treatment = flow.loc["Treatment"]
    assert treatment["clusters_allocated"] == 3 and treatment["individuals_allocated"] == 25
    assert treatment["clusters_lost"] == 1 and treatment["individuals_lost"] == 7
    assert treatment["individuals_excluded"] == 1
    assert treatment["clusters_analysed"] == 2 and treatment["individuals_analysed"] == 17
    control = flow.loc["Control"]
    assert control["individuals_analysed"] == 38 - 2 - 2
    for _, row in flow.iterrows():
        assert (row["individuals_lost"] + row["individuals_excluded"]
                + row["individuals_analysed"]) == row["individuals_allocated"]
    assert flow["individuals_allocated"].sum() == len(df)

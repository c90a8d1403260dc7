"""Design-based difference in means: against estimatr::difference_in_means and by behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit.analysis.data import AnalysisColumns, AnalysisInputError
from evalkit.analysis.dim import difference_in_means
from evalkit.analysis.ols import fit_ols_cr
from tests.reference_data import DATASETS, assert_contrast_matches, reference_numbers
from tests.reference_data import load_dataset as load


@pytest.fixture(scope="module")
def reference() -> dict:
    return reference_numbers()


def clustered_trial(layout: dict[str, tuple[int, int]], seed: int = 5) -> pd.DataFrame:
    """Staff rows for blocks given as {block: (treated clusters, control clusters)}."""
    rng = np.random.default_rng(seed)
    rows, number = [], 0
    for block, (n_treated, n_control) in layout.items():
        for arm, count in (("Treatment", n_treated), ("Control", n_control)):
            for _ in range(count):
                number += 1
                cluster_effect = rng.normal()
                for _ in range(rng.integers(3, 7)):
                    rows.append({"pdu": f"P{number:02d}", "region": block, "arm": arm,
                                 "y": 0.4 * (arm == "Treatment") + cluster_effect + rng.normal()})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("name", DATASETS)
def test_matches_estimatr(name, reference):
    result = difference_in_means(load(name), AnalysisColumns("y", "arm", "pdu", "region"))
    expected = reference[name]["dim"]["arms"]
    assert {c.arm for c in result.contrasts} == set(expected)
    for contrast in result.contrasts:
        want = expected[contrast.arm]
        assert_contrast_matches(contrast, want)
        assert contrast.extra["design"] == want["design"]
        assert contrast.extra["n_blocks"] == want["n_blocks"]
        assert contrast.extra["n_obs_contrast"] == want["n"]
        assert contrast.extra["n_clusters_contrast"] == want["n_clusters"]


def test_missing_outcomes_are_dropped_and_counted():
    frame = load("missing")
    result = difference_in_means(frame, AnalysisColumns("y", "arm", "pdu", "region"))
    assert frame["y"].isna().any()
    assert result.n_dropped == int(frame["y"].isna().sum())
    assert result.n_obs == int(frame["y"].notna().sum())


def test_single_cluster_in_an_arm_is_warned_and_adds_nothing_to_the_variance():
    frame = clustered_trial({"A, north": (1, 3), "B": (3, 3), "C": (2, 3)})
    result = difference_in_means(frame, AnalysisColumns("y", "arm", "pdu", "region"))
    warnings = result.diagnostics["warnings"]
    assert len(warnings) == 1
    assert "'A, north'" in warnings[0] and "single cluster" in warnings[0]
    # The claim in the warning: spreading that lone cluster's values around its own mean
    # leaves the estimate and the standard error unchanged.
    lone = (frame["region"] == "A, north") & (frame["arm"] == "Treatment")
    values = frame.loc[lone, "y"]
    spread = frame.assign(y=frame["y"].where(~lone, values.mean() + 5 * (values - values.mean())))
    again = difference_in_means(spread, AnalysisColumns("y", "arm", "pdu", "region"))
    assert again.contrasts[0].estimate == pytest.approx(result.contrasts[0].estimate, rel=1e-10)
    assert again.contrasts[0].se == pytest.approx(result.contrasts[0].se, rel=1e-8)


def test_well_populated_blocks_give_no_warning():
    frame = clustered_trial({"A": (2, 3), "B": (3, 3)})
    result = difference_in_means(frame, AnalysisColumns("y", "arm", "pdu", "region"))
    assert result.diagnostics["warnings"] == []


def test_pairs_of_clusters_use_matched_pair_estimator():
    frame = clustered_trial({"A": (1, 1), "B": (1, 1), "C": (1, 1), "D": (1, 1)})
    result = difference_in_means(frame, AnalysisColumns("y", "arm", "pdu", "region"))
    contrast = result.contrasts[0]
    assert contrast.extra["design"] == "Matched-pair clustered"
    assert contrast.df == 4 - 1
    assert len(result.diagnostics["warnings"]) == 8   # each arm of each block


def test_blocks_lacking_an_arm_are_excluded_and_reported():
    frame = clustered_trial({"A": (2, 3), "B": (3, 3), "Z": (0, 3)})
    result = difference_in_means(frame, AnalysisColumns("y", "arm", "pdu", "region"))
    assert result.diagnostics["blocks_without_both_arms"] == {"Treatment": ["Z"]}
    without = difference_in_means(frame[frame["region"] != "Z"],
                                  AnalysisColumns("y", "arm", "pdu", "region"))
    assert result.contrasts[0].se == pytest.approx(without.contrasts[0].se, rel=1e-12)


def test_unblocked_equals_cr2_regression_on_arm():
    frame = load("two_arms")
    dim = difference_in_means(frame, AnalysisColumns("y", "arm", "pdu")).contrasts[0]
    ols = fit_ols_cr(frame, AnalysisColumns("y", "arm", "pdu")).contrasts[0]
    assert dim.extra["design"] == "Clustered"
    assert dim.estimate == pytest.approx(ols.estimate, rel=1e-10)
    assert dim.se == pytest.approx(ols.se, rel=1e-10)
    assert dim.df == pytest.approx(ols.df, rel=1e-10)


def test_arm_varying_within_cluster_is_rejected():
    frame = clustered_trial({"A": (2, 3), "B": (3, 3)})
    frame.loc[0, "arm"] = "Control" if frame.loc[0, "arm"] == "Treatment" else "Treatment"
    with pytest.raises(AnalysisInputError):
        difference_in_means(frame, AnalysisColumns("y", "arm", "pdu", "region"))


def test_non_randomised_arms_are_flagged():
    result = difference_in_means(load("national"), AnalysisColumns("y", "arm", "pdu", "region"),
                                 non_randomised_arms=["Early Adopter"])
    assert {c.arm: c.randomised for c in result.contrasts} == {
        "Early Adopter": False, "Treatment": True}

"""ICC (vs lme4 null model), EEF g, Hedges (2007) d_T and the Cox index."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evalkit.analysis.data import AnalysisInputError
from evalkit.analysis.effect_sizes import (
    cox_index,
    eef_effect_size,
    hedges_g_clustered,
    icc_estimate,
    null_model_total_sd,
)
from tests.reference_data import load_dataset as load
from tests.reference_data import reference_numbers

REFERENCE = reference_numbers()
NULL_DATASETS = [name for name, entry in REFERENCE.items()
                 if isinstance(entry, dict) and "null_model" in entry]


@pytest.mark.parametrize("name", NULL_DATASETS)
def test_icc_matches_lme4_null_model(name):
    expected = REFERENCE[name]["null_model"]
    result = icc_estimate(load(name), "y", "pdu")
    assert result["n_obs"] == expected["n"]
    assert result["n_clusters"] == expected["n_clusters"]
    assert result["icc"] == pytest.approx(expected["icc"], rel=1e-4)
    assert result["sigma2_cluster"] == pytest.approx(expected["sigma2_cluster"], rel=1e-4)
    assert result["sigma2_resid"] == pytest.approx(expected["sigma2_resid"], rel=1e-4)
    assert result["ci_low"] < result["icc_anova"] < result["ci_high"]


def balanced_data(seed: int = 11, clusters: int = 12, size: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    effects = rng.normal(scale=0.6, size=clusters)
    return pd.DataFrame({
        "pdu": np.repeat([f"P{i:02d}" for i in range(clusters)], size),
        "y": np.repeat(effects, size) + rng.normal(size=clusters * size),
    })


def test_balanced_icc_equals_anova_and_searle_interval():
    data = balanced_data()
    result = icc_estimate(data, "y", "pdu", alpha=0.1)
    # Balanced one-way ANOVA by hand: k clusters of size m.
    k, m = 12, 8
    groups = [g["y"].to_numpy() for _, g in data.groupby("pdu")]
    grand = data["y"].mean()
    msb = m * sum((g.mean() - grand) ** 2 for g in groups) / (k - 1)
    msw = sum(((g - g.mean()) ** 2).sum() for g in groups) / (k * (m - 1))
    assert msb > msw  # so the REML estimate is interior and equals the ANOVA one
    anova_icc = (msb - msw) / (msb + (m - 1) * msw)
    assert result["icc"] == pytest.approx(anova_icc, rel=1e-6)
    assert result["n0"] == pytest.approx(m)
    f = msb / msw
    upper_q = stats.f.ppf(0.95, k - 1, k * (m - 1))
    lower_q = stats.f.ppf(0.05, k - 1, k * (m - 1))
    assert result["ci_low"] == pytest.approx((f / upper_q - 1) / (f / upper_q + m - 1))
    assert result["ci_high"] == pytest.approx((f / lower_q - 1) / (f / lower_q + m - 1))


def test_icc_drops_missing_outcomes():
    data = balanced_data()
    data.loc[[0, 5, 40], "y"] = np.nan
    result = icc_estimate(data, "y", "pdu")
    assert result["n_dropped"] == 3
    assert result["n_obs"] == len(data) - 3


def test_eef_effect_size_divides_by_null_model_total_sd():
    name = min(NULL_DATASETS, key=lambda n: REFERENCE[n]["null_model"]["n"])
    expected = REFERENCE[name]["null_model"]
    total_sd = null_model_total_sd(load(name), "y", "pdu")
    assert total_sd == pytest.approx(
        math.sqrt(expected["sigma2_cluster"] + expected["sigma2_resid"]), rel=1e-4)
    es = eef_effect_size(0.3, 0.1, 0.5, total_sd=0.8)
    assert (es["effect_size"], es["ci_low"], es["ci_high"]) == pytest.approx((0.375, 0.125, 0.625))
    with pytest.raises(AnalysisInputError):
        eef_effect_size(0.3, 0.1, 0.5, total_sd=0.0)


def test_hedges_2007_worked_example():
    # 10 clusters of 10 per arm (N = 200, n = 10), rho = 0.2, difference 0.5 SD.
    out = hedges_g_clustered(0.5, 1.0, 100, 100, 10, 0.2)
    d_t = 0.5 * math.sqrt(1 - 2 * 9 * 0.2 / 198)
    first = (200 / 10000) * (1 + 9 * 0.2)
    bracket = 198 * 0.8**2 + 10 * 180 * 0.04 + 2 * 180 * 0.2 * 0.8
    second = d_t**2 * bracket / (2 * 198 * (198 - 2 * 9 * 0.2))
    assert out["d_t"] == pytest.approx(d_t, rel=1e-12)
    assert out["variance"] == pytest.approx(first + second, rel=1e-12)
    assert out["g"] == pytest.approx(d_t * (1 - 3 / (4 * 200 - 9)))
    assert out["ci_low"] < out["d_t"] < out["ci_high"]


def test_hedges_without_clustering_is_the_usual_standardised_difference():
    out = hedges_g_clustered(0.4, 2.0, 30, 50, 5, 0.0)
    assert out["d_t"] == pytest.approx(0.2)
    assert out["variance"] == pytest.approx(80 / 1500 + 0.2**2 / (2 * 78))
    assert hedges_g_clustered(0.4, 2.0, 30, 50, 1, 0.5)["d_t"] == pytest.approx(0.2)


def test_cox_index():
    # odds 1.5 vs 2/3: log odds ratio = 2 log 1.5
    assert cox_index(0.6, 0.4) == pytest.approx(2 * math.log(1.5) / 1.65)
    assert cox_index(0.3, 0.3) == 0
    assert cox_index(0.2, 0.7) == pytest.approx(-cox_index(0.7, 0.2))
    with pytest.raises(AnalysisInputError):
        cox_index(1.0, 0.5)

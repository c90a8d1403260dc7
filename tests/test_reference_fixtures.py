"""Smoke test for the R reference fixtures in tests/reference/.

Protects reference.json and the datasets against silent corruption: every dataset has
every model block, the arm keys match the arms in the CSV, and the row counts recorded by
R equal the complete-case counts computed here with pandas.  (R itself is not needed.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

REF_DIR = Path(__file__).resolve().parent / "reference"
DATASETS = ["national", "few_clusters", "missing", "two_arms", "unequal"]
COLUMNS = ["staff_id", "pdu", "region", "arm", "x1", "x2", "y", "y_bin", "y_count", "completed"]
ARM_MODELS = [
    "mixed",
    "mixed_kr",
    "cr2",
    "cr1",
    "gee_binomial",
    "gee_poisson",
    "gee_binomial_md",
    "dim",
    "lm_cr2_estimatr",
]
MODEL_KEYS = ARM_MODELS + ["n_obs", "null_model", "iv_cr2"]
FIELDS = {
    "mixed": ["estimate", "se", "df", "statistic", "p_value"],
    "mixed_kr": ["estimate", "se", "df", "statistic", "p_value"],
    "cr2": ["estimate", "se", "df", "statistic", "p_value"],
    "cr1": ["se", "df", "p_value"],
    "gee_binomial": ["estimate", "se"],
    "gee_poisson": ["estimate", "se"],
    "gee_binomial_md": ["se"],
    "dim": ["estimate", "se", "df", "p_value"],
    "lm_cr2_estimatr": ["estimate", "se", "df", "p_value"],
}


@pytest.fixture(scope="module")
def reference():
    with open(REF_DIR / "reference.json", encoding="utf-8") as fh:
        return json.load(fh)


def load(name: str) -> pd.DataFrame:
    return pd.read_csv(REF_DIR / "datasets" / f"{name}.csv")


def _finite(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def test_meta(reference):
    meta = reference["_meta"]
    assert meta["r_version"].startswith("R version")
    for pkg in ["lme4", "lmerTest", "pbkrtest", "clubSandwich", "estimatr", "geepack"]:
        assert pkg in meta["packages"]
    assert meta["skipped"] == []


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_consistent_with_reference(reference, name):
    df = load(name)
    assert list(df.columns) == COLUMNS
    assert df["region"].str.contains(", ").any()  # quoting exercised
    ref = reference[name]
    for key in MODEL_KEYS:
        assert key in ref, f"{name}: missing {key}"

    base = ["arm", "region", "x1", "pdu"]
    for outcome in ["y", "y_bin", "y_count"]:
        n = int(df[[outcome, *base]].notna().all(axis=1).sum())
        assert ref["n_obs"][outcome] == n, (name, outcome)
    assert ref["n_clusters"] == df["pdu"].nunique()

    arms = sorted(set(df["arm"]) - {"Control"})
    assert sorted(ref["arms"]) == arms
    for model in ARM_MODELS:
        block = ref[model]
        assert sorted(block["arms"]) == arms, (name, model)
        for arm in arms:
            for field in FIELDS[model]:
                assert _finite(block["arms"][arm][field]), (name, model, arm, field)
            se = block["arms"][arm]["se"]
            assert se > 0
    assert sorted(ref["iv_cr2"]) == arms
    for arm in arms:
        for field in ["estimate", "se", "df", "p_value"]:
            assert _finite(ref["iv_cr2"][arm][field])

    # models on y use complete cases of (y, arm, region, x1, pdu)
    g_y = df.loc[df[["y", "x1"]].notna().all(axis=1), "pdu"].nunique()
    for model in ["mixed", "cr2", "cr1", "lm_cr2_estimatr"]:
        assert ref[model]["n"] == ref["n_obs"]["y"]
        assert ref[model]["n_clusters"] == g_y
    assert ref["gee_binomial"]["n"] == ref["n_obs"]["y_bin"]
    assert ref["gee_poisson"]["n"] == ref["n_obs"]["y_count"]
    assert ref["null_model"]["n"] == int(df["y"].notna().sum())

    # the two CR2 implementations (clubSandwich, estimatr) agree
    for arm in arms:
        a, b = ref["cr2"]["arms"][arm], ref["lm_cr2_estimatr"]["arms"][arm]
        assert a["estimate"] == pytest.approx(b["estimate"], rel=1e-8)
        assert a["se"] == pytest.approx(b["se"], rel=1e-8)
    # Mancl-DeRouen is larger than the plain sandwich, which equals geepack's
    for arm in arms:
        md = ref["gee_binomial_md"]["arms"][arm]
        assert md["se_uncorrected"] == pytest.approx(
            ref["gee_binomial"]["arms"][arm]["se"], rel=1e-8
        )
        assert md["se"] > md["se_uncorrected"]
    assert 0 < ref["null_model"]["icc"] < 1


def test_region_names_need_quoting():
    df = load("national")
    assert df["region"].str.contains(", ").any()
    assert set(df["arm"]) == {"Early Adopter", "Treatment", "Control"}


def test_missing_dataset_has_missing_cells():
    df = load("missing")
    for col in ["y", "y_bin", "y_count"]:
        assert 0.08 < df[col].isna().mean() < 0.25
    assert 0.005 < df["x1"].isna().mean() < 0.05

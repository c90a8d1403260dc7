"""The committed R reference fixtures: datasets and the numbers R produced for them."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pandas as pd

REF_DIR = Path(__file__).resolve().parent / "reference"
DATASETS = ["national", "few_clusters", "missing", "two_arms", "unequal"]


@functools.cache
def reference_numbers() -> dict:
    """tests/reference/reference.json, read once."""
    return json.loads((REF_DIR / "reference.json").read_text(encoding="utf-8"))


def load_dataset(name: str) -> pd.DataFrame:
    """One reference dataset as pandas reads it (missing cells as NaN)."""
    return pd.read_csv(REF_DIR / "datasets" / f"{name}.csv")


def assert_contrast_matches(contrast, want: dict) -> None:
    """Estimate and SE within 1e-4 relative of R, df and p within 1e-3 (the issue's bar)."""
    import pytest

    assert contrast.estimate == pytest.approx(want["estimate"], rel=1e-4)
    assert contrast.se == pytest.approx(want["se"], rel=1e-4)
    assert contrast.df == pytest.approx(want["df"], rel=1e-3)
    assert contrast.p_value == pytest.approx(want["p_value"], rel=1e-3)

"""The report's MDES moments: recomputed at analysis with the ICC and attrition observed."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from evalkit.analysis.plan.mdes import mdes_moments, sample_size_paragraph
from evalkit.cli import app
from tests.helpers import write_trial

runner = CliRunner()
POWER_SECTION = "[analysis.power]\nicc = 0.05\n"


def _sealed(tmp_path, extra=""):
    design = write_trial(tmp_path / "trial", extra=extra)
    run = tmp_path / "run"
    result = runner.invoke(app, ["assign", str(design), "--out", str(run)])
    assert result.exit_code == 0, result.output
    return run


def _observed(icc, lost):
    iccs = pd.DataFrame([{"outcome": "y", "icc": icc}, {"outcome": "other", "icc": 0.5}])
    attrition = pd.DataFrame([{"outcome": "y", "level": "individual", "overall": lost},
                              {"outcome": "y", "level": "cluster", "overall": 0.9}])
    return iccs, attrition


def test_a_larger_observed_icc_and_attrition_raise_the_mdes(tmp_path):
    run = _sealed(tmp_path, POWER_SECTION)
    same = mdes_moments(run, *_observed(0.05, 0.0), "y")
    worse = mdes_moments(run, *_observed(0.15, 0.2), "y")
    drawn = same["at_randomisation"]["mdes"]
    assert same["at_analysis"]["mdes"] == drawn  # nothing observed differs from the assumption
    for contrast, value in drawn.items():
        assert worse["at_analysis"]["mdes"][contrast] > value
    assert worse["observed"] == {"icc": 0.15, "attrition": 0.2}
    paragraph = sample_size_paragraph(worse, 0.05, 0.8)
    assert "0.050" in paragraph and "observed" in paragraph


def test_no_power_section_means_no_mdes_moments(tmp_path):
    run = _sealed(tmp_path)
    assert mdes_moments(run, *_observed(0.1, 0.1), "y") is None

"""What the analysis refuses, what it warns about, and the options that select rows or df.

Refusals follow R (lme4 stops when clusters are not fewer than rows); warnings reach the
screen and results.json; options a model would ignore are errors (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from evalkit.analysis.data import AnalysisColumns, AnalysisInputError, check_cluster_nesting
from evalkit.analysis.gee import fit_gee
from evalkit.analysis.mixed import hessian_warnings
from evalkit.analysis.ols import fit_ols_cr
from evalkit.cli import app
from tests.reference_data import REF_DIR, reference_numbers

FEW = REF_DIR / "datasets" / "few_clusters.csv"
BASE = ["--outcome", "y", "--arm-col", "arm", "--cluster-col", "pdu", "--strata-col", "region"]
runner = CliRunner()


def analyse(data: Path, *args: str):
    return runner.invoke(app, ["analyse", str(data), *args])


def write(tmp_path: Path, frame: pd.DataFrame, name: str = "data.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def few() -> pd.DataFrame:
    return pd.read_csv(FEW)


def test_mixed_refuses_one_row_per_cluster(tmp_path):
    per_pdu = few().groupby(["pdu", "region", "arm"], as_index=False)["y"].mean()
    result = analyse(write(tmp_path, per_pdu), *BASE, "--model", "mixed")
    assert result.exit_code == 2
    assert "must be fewer than the number of rows" in result.output
    assert "hc2" in result.output


def test_mixed_refuses_a_single_cluster(tmp_path):
    one = few().assign(pdu="P1")
    result = analyse(write(tmp_path, one), "--outcome", "y", "--model", "mixed",
                     "--allow-clusters-across-arms")
    assert result.exit_code == 2 and "at least two clusters" in result.output


def test_singular_fit_warns_on_screen_and_in_json(tmp_path):
    frame = few()
    # remove every between-cluster difference: the cluster variance is exactly zero
    frame["y"] = frame["y"] - frame.groupby("pdu")["y"].transform("mean")
    out = tmp_path / "r.json"
    result = analyse(write(tmp_path, frame), *BASE, "--model", "mixed", "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "singular" in result.output
    document = json.loads(out.read_text())
    assert any("singular" in w for w in document["diagnostics"]["warnings"])


def test_hessian_check_flags_negative_and_zero_eigenvalues():
    assert hessian_warnings([3.0, 2.0]) == []
    (negative,) = hessian_warnings([-1e-3, 2.0])
    assert "negative" in negative and "-1.0e-03" in negative
    (zero,) = hessian_warnings([1e-12, 2.0])
    assert "close to zero" in zero


def test_poisson_gee_refuses_non_integer_counts():
    frame = few().assign(y_count=lambda d: d["y_count"] + 0.5)
    with pytest.raises(AnalysisInputError, match="whole-number counts"):
        fit_gee(frame, AnalysisColumns("y_count", "arm", "pdu", "region"), family="poisson")


@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt")
def test_gee_warns_about_a_stratum_without_events():
    frame = few()
    region = sorted(frame["region"].unique())[0]
    frame.loc[frame["region"] == region, "y_bin"] = 0
    result = fit_gee(frame, AnalysisColumns("y_bin", "arm", "pdu", "region"),
                     family="binomial")
    (warning,) = result.warnings
    assert "separation" in warning and repr(region) in warning
    clean = fit_gee(few(), AnalysisColumns("y_bin", "arm", "pdu", "region"), family="binomial")
    assert clean.warnings == []


def test_cluster_in_two_strata_is_named_and_can_be_allowed(tmp_path):
    frame = few()
    pdu = frame["pdu"].iloc[0]
    other = sorted(set(frame["region"]) - {frame["region"].iloc[0]})[0]
    frame.loc[frame.index[:3], "region"] = other
    path = write(tmp_path, frame)
    refused = analyse(path, *BASE, "--model", "cr2")
    assert refused.exit_code == 2
    assert f"cluster {pdu!r}" in refused.output and "more than one stratum" in refused.output
    allowed = analyse(path, *BASE, "--model", "cr2", "--allow-clusters-across-strata")
    assert allowed.exit_code == 0, allowed.output


def test_cluster_in_two_arms_is_an_error():
    frame = few()
    frame.loc[frame.index[0], "arm"] = "Treatment" if frame["arm"].iloc[0] == "Control" \
        else "Control"
    cols = AnalysisColumns("y", "arm", "pdu", "region")
    with pytest.raises(AnalysisInputError, match="more than one arm"):
        check_cluster_nesting(frame, cols)
    check_cluster_nesting(frame, cols, across_arms=True)


@pytest.mark.parametrize("args, message", [
    (["--model", "dim", "--covariate", "x1"], "--covariate does not apply to --model dim"),
    (["--model", "mixed", "--permutations", "99"], "--permutations does not apply"),
    (["--model", "cr2", "--seed", "4"], "--seed does not apply"),
    (["--model", "cr2", "--ddf", "kenward-roger"], "--ddf does not apply"),
    (["--model", "mixed", "--ddf", "containment"], "not one of satterthwaite, kenward-roger"),
])
def test_options_a_model_ignores_are_errors(args, message):
    result = analyse(FEW, *BASE, *args)
    assert result.exit_code == 2 and message in result.output


def test_kenward_roger_from_the_cli_matches_pbkrtest(tmp_path):
    out = tmp_path / "kr.json"
    result = analyse(FEW, *BASE, "--covariate", "x1", "--model", "mixed", "--ddf",
                     "kenward-roger", "--json", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["diagnostics"]["df_method"] == "Kenward-Roger (pbkrtest)"
    expected = reference_numbers()["few_clusters"]["mixed_kr"]["arms"]
    for contrast in document["contrasts"]:
        want = expected[contrast["arm"]]
        assert contrast["estimate"] == pytest.approx(want["estimate"], rel=1e-5)
        assert contrast["se"] == pytest.approx(want["se"], rel=1e-5)
        assert contrast["df"] == pytest.approx(want["df"], rel=1e-3)


def test_text_covariate_becomes_indicators_with_its_reference_level(tmp_path):
    frame = few()
    frame["band"] = np.select([frame["x2"] < 45, frame["x2"] < 55], ["low", "mid"], "high")
    out = tmp_path / "cat.json"
    result = analyse(write(tmp_path, frame), *BASE, "--covariate", "band", "--model", "cr2",
                     "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "reference level 'high'" in result.output
    document = json.loads(out.read_text())
    assert document["diagnostics"]["categorical_covariates"]["band"]["reference"] == "high"
    dummies = frame.assign(band_low=(frame["band"] == "low") * 1.0,
                           band_mid=(frame["band"] == "mid") * 1.0)
    by_hand = fit_ols_cr(dummies, AnalysisColumns("y", "arm", "pdu", "region",
                                                  ("band_low", "band_mid")))
    assert document["contrasts"][0]["estimate"] == pytest.approx(
        by_hand.contrasts[0].estimate, rel=1e-12)
    assert document["contrasts"][0]["se"] == pytest.approx(by_hand.contrasts[0].se, rel=1e-12)


def test_a_stray_text_value_in_a_numeric_covariate_is_still_an_error(tmp_path):
    frame = few().astype({"x1": object})
    frame.loc[5, "x1"] = "n/k"
    result = analyse(write(tmp_path, frame), *BASE, "--covariate", "x1", "--model", "cr2")
    assert result.exit_code == 2 and "row 7" in result.output and "x1" in result.output


def test_where_keeps_matching_rows_and_equals_a_prefiltered_file(tmp_path):
    frame = few()
    region = sorted(frame["region"].unique())[1]
    out = tmp_path / "where.json"
    result = analyse(FEW, *BASE, "--model", "cr2", "--where", f"region != {region}",
                     "--json", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    subset = frame[frame["region"] != region]
    direct = fit_ols_cr(subset, AnalysisColumns("y", "arm", "pdu", "region"))
    assert document["n_obs"] == direct.n_obs == len(subset)
    assert document["diagnostics"]["rows_selected"] == len(subset)
    assert document["contrasts"][0]["estimate"] == pytest.approx(
        direct.contrasts[0].estimate, rel=1e-12)


@pytest.mark.parametrize("condition, message", [
    ("regoin == London", "column 'regoin' not found"),
    ("region == Londn", "has no value 'Londn'"),
    ("region > London", 'not of the form "column == value"'),
])
def test_where_is_validated(condition, message):
    result = analyse(FEW, *BASE, "--model", "cr2", "--where", condition)
    assert result.exit_code == 2 and message in result.output

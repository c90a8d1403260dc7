"""`evalkit analyse DATA --model ...`: CLI numbers equal the library (and R), inputs, errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from evalkit.analysis.data import AnalysisColumns
from evalkit.analysis.dim import difference_in_means
from evalkit.analysis.gee import fit_gee
from evalkit.analysis.mixed import ModelFitError, fit_mixed
from evalkit.analysis.ols import fit_ols_cr
from evalkit.analysis.randomisation_inference import randomisation_test
from evalkit.cli import app
from evalkit.io.xlsx import write_xlsx

COLS = AnalysisColumns("y", "arm", "pdu", "region", ("x1",))
REF_DIR = Path(__file__).resolve().parent / "reference"
FEW = REF_DIR / "datasets" / "few_clusters.csv"
REFERENCE = json.loads((REF_DIR / "reference.json").read_text())
BASE = ["--outcome", "y", "--arm-col", "arm", "--cluster-col", "pdu", "--strata-col", "region",
        "--covariate", "x1"]
runner = CliRunner()


def strict_json(path: Path) -> dict:
    """Parse JSON, failing on NaN / Infinity (which are not JSON)."""
    def refuse(token: str):
        raise ValueError(f"non-JSON constant {token}")
    return json.loads(path.read_text(), parse_constant=refuse)


def run_json(tmp_path: Path, data: Path, *args: str) -> dict:
    out = tmp_path / "result.json"
    result = runner.invoke(app, ["analyse", str(data), *args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    return strict_json(out)


def library_result(model: str, frame: pd.DataFrame):
    cols = AnalysisColumns("y", "arm", "pdu", "region", ("x1",))
    if model == "mixed":
        return fit_mixed(frame, cols)
    if model in ("cr2", "cr1"):
        return fit_ols_cr(frame, cols, vcov=model.upper())
    if model == "dim":
        return difference_in_means(frame, cols.with_changes(covariates=()))
    if model == "ri":
        return randomisation_test(frame, cols, permutations=500, seed=3)
    return fit_gee(frame, cols.with_changes(outcome="y_bin"), family="binomial",
                   small_sample="mancl-derouen")


def assert_same_contrasts(document: dict, expected) -> None:
    assert document["n_obs"] == expected.n_obs
    assert document["n_clusters"] == expected.n_clusters
    assert len(document["contrasts"]) == len(expected.contrasts)
    for got, want in zip(document["contrasts"], expected.contrasts, strict=True):
        assert got["arm"] == want.arm and got["versus"] == want.versus
        for key in ("estimate", "se", "p_value", "ci_low", "ci_high"):
            assert got[key] == pytest.approx(getattr(want, key), rel=1e-9, abs=1e-12)
        assert (got["df"] is None) == (want.df is None)


@pytest.mark.parametrize("model", ["mixed", "cr2", "cr1", "dim", "ri", "gee"])
def test_each_model_json_equals_library_call(tmp_path, model):
    special = {
        "ri": [*BASE, "--model", "ri", "--permutations", "500", "--seed", "3"],
        "gee": ["--outcome", "y_bin", "--arm-col", "arm", "--cluster-col", "pdu",
                "--strata-col", "region", "--covariate", "x1", "--model", "gee",
                "--family", "binomial", "--small-sample", "mancl-derouen"],
        "dim": ["--outcome", "y", "--arm-col", "arm", "--cluster-col", "pdu",
                "--strata-col", "region", "--model", "dim"],
    }
    args = special.get(model, [*BASE, "--model", model])
    document = run_json(tmp_path, FEW, *args)
    assert document["model"] == model
    assert_same_contrasts(document, library_result(model, pd.read_csv(FEW)))


@pytest.mark.parametrize("model", ["mixed", "cr2"])
def test_cli_matches_r_reference(tmp_path, model):
    document = run_json(tmp_path, FEW, *BASE, "--model", model)
    expected = REFERENCE["few_clusters"][model]
    assert document["n_obs"] == expected["n"]
    for contrast in document["contrasts"]:
        ref = expected["arms"][contrast["arm"]]
        for key in ("estimate", "se", "statistic"):
            assert contrast[key] == pytest.approx(ref[key], rel=1e-4)
        assert contrast["df"] == pytest.approx(ref["df"], rel=1e-3)
    if model == "mixed":
        assert document["icc"] is not None and 0 <= document["icc"] < 1
    assert document["joint_test"]["p_value"] is not None


def test_spaces_in_names_and_commas_in_strata(tmp_path):
    frame = pd.read_csv(REF_DIR / "datasets" / "two_arms.csv")
    assert frame["region"].str.contains(",").any()
    renamed = frame.rename(columns={"y": "supervision score", "pdu": "PDU code",
                                    "region": "probation region"})
    path = tmp_path / "spaced.csv"
    renamed.to_csv(path, index=False)
    document = run_json(tmp_path, path, "--outcome", "supervision score", "--cluster-col",
                        "PDU code", "--strata-col", "probation region", "--covariate", "x1",
                        "--model", "cr2")
    expected = fit_ols_cr(frame, COLS)
    assert_same_contrasts(document, expected)


def test_xlsx_input_gives_the_same_answer(tmp_path):
    frame = pd.read_csv(FEW)
    path = write_xlsx(tmp_path / "few.xlsx", {"data": frame})
    document = run_json(tmp_path, path, *BASE, "--model", "cr2")
    assert_same_contrasts(document, fit_ols_cr(frame, COLS))


def test_missing_outcomes_are_dropped_and_counted(tmp_path):
    path = REF_DIR / "datasets" / "missing.csv"
    frame = pd.read_csv(path)
    document = run_json(tmp_path, path, *BASE, "--model", "cr2")
    assert document["diagnostics"]["rows_missing_outcome"] == int(frame["y"].isna().sum())
    assert document["diagnostics"]["rows_read"] == len(frame)
    assert_same_contrasts(document, fit_ols_cr(frame, COLS))


def test_non_randomised_arm_is_labelled_and_left_out_of_ri(tmp_path):
    national = REF_DIR / "datasets" / "national.csv"
    args = ["--non-randomised", "Early Adopter"]
    cr2 = run_json(tmp_path, national, *BASE, "--model", "cr2", *args)
    labels = {c["arm"]: c["randomised"] for c in cr2["contrasts"]}
    assert labels == {"Early Adopter": False, "Treatment": True}
    ri = run_json(tmp_path, national, *BASE, "--model", "ri", "--permutations", "200", *args)
    assert [c["arm"] for c in ri["contrasts"]] == ["Treatment"]


def test_unknown_column_exits_2_with_suggestion():
    result = runner.invoke(app, ["analyse", str(FEW), "--outcome", "y_binn", "--model", "cr2"])
    assert result.exit_code == 2
    assert "y_binn" in result.output and "Did you mean 'y_bin'" in result.output


@pytest.mark.parametrize("args, words", [
    (["--model", "gee"], "--family binomial or poisson"),
    (["--model", "mixed", "--family", "binomial"], "use --model gee"),
    (["--model", "cr2", "--small-sample", "mancl-derouen"], "applies to --model gee"),
    (["--model", "mixd"], "Did you mean 'mixed'"),
])
def test_bad_combinations_exit_2(args, words):
    result = runner.invoke(app, ["analyse", str(FEW), "--outcome", "y", *args])
    assert result.exit_code == 2
    assert words in result.output


def test_non_numeric_outcome_names_row_and_column(tmp_path):
    frame = pd.read_csv(FEW)
    frame["y"] = frame["y"].astype(object)
    frame.loc[4, "y"] = "n/k"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["analyse", str(path), "--outcome", "y", "--model", "cr2"])
    assert result.exit_code == 2
    assert "row 6" in result.output and "'y'" in result.output and "n/k" in result.output


def test_model_fit_error_is_a_clear_message_not_a_traceback(monkeypatch):
    def failing(*args, **kwargs):
        raise ModelFitError("no optimiser gave a sound answer")
    monkeypatch.setattr("evalkit.analysis.mixed.fit_mixed", failing)
    result = runner.invoke(app, ["analyse", str(FEW), *BASE, "--model", "mixed"])
    assert result.exit_code == 2
    assert "could not be fitted" in result.output and "--model cr2" in result.output
    assert "Traceback" not in result.output


def test_json_has_no_nan_for_normal_reference_df(tmp_path):
    document = run_json(tmp_path, FEW, *BASE, "--model", "ri", "--permutations", "100")
    assert document["contrasts"][0]["df"] is None
    assert math.isfinite(document["contrasts"][0]["p_value"])


def test_subprocess_end_to_end(tmp_path):
    out = tmp_path / "sub.json"
    command = [sys.executable, "-c", "from evalkit.cli import app; app()", "analyse", str(FEW),
               *BASE, "--model", "cr2", "--json", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "Treatment" in completed.stdout
    assert_same_contrasts(strict_json(out), library_result("cr2", pd.read_csv(FEW)))
    missing = subprocess.run(command[:4] + ["nowhere.csv", "--outcome", "y"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "file not found" in missing.stderr

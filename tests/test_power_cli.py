"""`evalkit power` end to end through typer's CliRunner: outputs, and bad inputs exit 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from tests.helpers import write_trial

runner = CliRunner()


def test_numbers_write_json_and_html_with_the_powerupr_answer(tmp_path):
    result = runner.invoke(app, ["power", "--clusters", "20", "--cluster-size", "15",
                                 "--icc", "0.17", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "power.json").read_text())
    designed = payload["contrasts"][0]
    assert designed["model"] == "cra2" and designed["df"] == 18
    assert round(designed["mdes"], 3) == 0.629
    page = (tmp_path / "power.html").read_text()
    assert "<svg" in page and "CONSORT 7a" in page and "<script" not in page


def test_solve_for_clusters_reaches_the_target_power(tmp_path):
    result = runner.invoke(app, ["power", "--clusters", "44", "--cluster-size", "20",
                                 "--blocks", "5", "--icc", "0.10", "--effect", "0.145",
                                 "--solve-clusters", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    designed = json.loads((tmp_path / "power.json").read_text())["contrasts"][0]
    assert designed["clusters_needed"] == 44 and designed["power"] >= 0.8


def test_design_uses_real_strata_fixed_units_and_the_power_section(tmp_path):
    design = write_trial(tmp_path / "trial", extra="[analysis.power]\nicc = 0.05\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["power", "--config", str(design), "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "power.json").read_text())
    assert payload["assumptions"]["icc"] == 0.05
    rows = {(r["contrast"], r["level"]): r for r in payload["contrasts"]}
    treatment = rows[("Treatment vs Control", "as designed")]
    # 15 PDUs in 3 regions, one fixed Early Adopter: 14 randomised 1:1
    assert treatment["clusters_arm"] + treatment["clusters_control"] == 14
    assert treatment["blocks"] == 3 and treatment["df"] == 14 - 2 * 3
    assert "Early Adopter vs Control (purposive) not computed" in payload["notes"][0]
    assert ("Treatment vs Control", "alternative") in rows


@pytest.mark.parametrize("arguments, message", [
    (["--icc", "1"], "icc (--icc) must be in [0, 1)"),
    (["--icc", "0.1", "--r2-cluster", "1.2"], "--r2-cluster) must be in [0, 1)"),
    (["--icc", "0.1", "--r2-individual", "-0.1"], "--r2-individual) must be in [0, 1)"),
    (["--icc", "0.1", "--treated-share", "1"], "--treated-share) must be in (0, 1)"),
    (["--icc", "0.1", "--power", "1"], "power (--power) must be in (0, 1)"),
    (["--icc", "0.1", "--alpha", "0"], "alpha"),
    (["--icc", "0.1", "--clusters", "3"], "fewer than two clusters per arm"),
    (["--icc", "0.1", "--clusters", "1", "--blocks", "4"], "every block needs at least 2"),
    (["--icc", "0.1", "--adjust", "sidak"], "allowed none, bonferroni, holm"),
])
def test_bad_numbers_exit_2_with_a_clear_message(tmp_path, arguments, message):
    base = ["power", "--clusters", "20", "--cluster-size", "15", "--out", str(tmp_path)]
    result = runner.invoke(app, base + arguments)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "power.json").exists()


def test_a_stratum_with_one_pdu_is_refused(tmp_path):
    import pandas as pd

    from tests.helpers import small_pdus
    pdus = small_pdus()
    pdus = pd.concat([pdus, pdus.iloc[[0]].assign(pdu_code="LONE", pdu_name="Lone",
                                                   region="Region 9")])
    design = write_trial(tmp_path / "trial", pdus=pdus)
    result = runner.invoke(app, ["power", "--config", str(design), "--icc", "0.05",
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "Region 9" in result.output and "at least 2 clusters" in result.output

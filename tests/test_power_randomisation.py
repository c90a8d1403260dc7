"""MDES at randomisation: `assign` records it for the allocation drawn when the design asks."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.power.analytic import Assumptions
from evalkit.power.randomisation import mdes_at_analysis, randomisation_power
from evalkit.register import Register
from tests.helpers import write_trial

runner = CliRunner()
POWER_SECTION = "[analysis.power]\nicc = 0.05\nr2_cluster = 0.2\ncovariates = 1\n"


def test_assign_records_the_mdes_of_the_allocation_drawn(tmp_path):
    design = write_trial(tmp_path / "trial", extra=POWER_SECTION)
    run = tmp_path / "run"
    result = runner.invoke(app, ["assign", str(design), "--out", str(run)])
    assert result.exit_code == 0, result.output
    payload = json.loads((run / "power.json").read_text())
    assert payload["source"]["moment"] == "randomisation"
    assert payload["assumptions"]["icc"] == 0.05
    register = Register.open(run)
    drawn = register.table("allocation")["group"].value_counts()
    row = next(r for r in payload["contrasts"]
               if r["contrast"] == "Treatment vs Control" and r["level"] == "as designed")
    assert (row["clusters_arm"], row["clusters_control"]) == (drawn["Treatment"],
                                                             drawn["Control"])
    summary = register.meta("power_at_randomisation")
    assert summary["mdes"]["Treatment vs Control"] == round(row["mdes"], 6)
    assert "power_recorded" in set(register.events()["kind"])
    assert (run / "power.html").exists()


def test_assign_without_a_power_section_writes_no_power_file(tmp_path):
    design = write_trial(tmp_path / "trial")
    run = tmp_path / "run"
    result = runner.invoke(app, ["assign", str(design), "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert not (run / "power.json").exists()
    assert Register.open(run).meta("power_at_randomisation") is None


def test_a_bad_power_section_names_the_key(tmp_path):
    design = write_trial(tmp_path / "trial", extra="[analysis.power]\nicc = 1.5\n")
    result = runner.invoke(app, ["power", "--config", str(design), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "analysis.power.icc" in result.output


def _treatment_mdes(report):
    return next(r["mdes"] for r in report.rows
                if r["contrast"] == "Treatment vs Control" and r["level"] == "as designed")


def test_mdes_at_analysis_recomputes_with_the_observed_icc_and_attrition(tmp_path):
    design = write_trial(tmp_path / "trial", extra=POWER_SECTION)
    run = tmp_path / "run"
    assert runner.invoke(app, ["assign", str(design), "--out", str(run)]).exit_code == 0
    at_randomisation = randomisation_power(run)
    observed = mdes_at_analysis(run, Assumptions(icc=0.15, r2_cluster=0.2, covariates=1,
                                                 attrition=0.25))
    assert observed.source["moment"] == "analysis"
    assert _treatment_mdes(observed) > _treatment_mdes(at_randomisation)


def test_staff_level_designs_record_the_staff_randomised_mdes(tmp_path):
    design = write_trial(tmp_path / "trial", unit="staff", fixed="[]", extra=POWER_SECTION)
    run = tmp_path / "run"
    result = runner.invoke(app, ["assign", str(design), "--out", str(run),
                                 "--key-file", str(tmp_path / "joiners.key")])
    assert result.exit_code == 0, result.output
    rows = json.loads((run / "power.json").read_text())["contrasts"]
    designed = next(r for r in rows if r["level"] == "as designed")
    assert designed["model"] == "bira2f1"
    assert designed["clusters_arm"] + designed["clusters_control"] == 60  # 15 PDUs x 4 staff

"""End-to-end: example -> assign -> verify -> lookup, through the CLI and a real subprocess."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.io.files import sha256_file
from tests.conftest import SEEDS2_CONFIG
from tests.helpers import small_pdus, small_staff, write_trial

runner = CliRunner()


def test_national_allocation_outputs(national_run):
    folder = national_run.directory
    allocation = pd.read_csv(folder / "allocation.csv")
    assert len(allocation) == 108                      # 109 PDUs less the excluded one
    early = allocation[allocation["group"] == "Early Adopter"]
    assert len(early) == 8 and set(early["assignment"]) == {"fixed"}
    assert set(early["region"]) == {"West Midlands", "East of England"}
    random = allocation[allocation["assignment"] == "random"]
    assert random["p_treatment"].eq(0.5).all() and random["p_control"].eq(0.5).all()
    per_region = random.groupby("region")["group"].value_counts().unstack(fill_value=0)
    assert (per_region["Treatment"] - per_region["Control"]).abs().max() <= 1
    assert abs((random["group"] == "Treatment").sum() - (random["group"] == "Control").sum()) <= 1
    staff = pd.read_csv(folder / "staff_allocation.csv")
    pdu_group = allocation.set_index("unit_id")["group"]
    in_trial = staff[staff["group"] != "Not in trial"]
    assert (in_trial["pdu_code"].map(pdu_group) == in_trial["group"]).all()
    assert set(staff.loc[staff["grade"] == "SPO", "course"]) == {"SEEDS2 for Managers"}
    assert set(staff.loc[staff["grade"] == "CA", "course"]) == {"none"}
    balance = pd.read_csv(folder / "balance.csv")
    assert set(balance["group"]) == {"Early Adopter", "Treatment", "Control"}
    assert balance["staff"].sum() == in_trial.shape[0]
    workbook = load_workbook(folder / "allocation.xlsx", read_only=True)
    assert workbook.sheetnames == ["About", "Allocation", "Staff", "Balance"]


def test_manifest_records_what_verify_needs(national_run, example_files):
    manifest = json.loads((national_run.directory / "manifest.json").read_text())
    assert manifest["seed"] == 20220214
    assert manifest["algorithm"].startswith("evalkit-stratified-complete/")
    assert manifest["inputs"]["pdus"]["sha256"] == sha256_file(example_files["pdus"])
    assert manifest["inputs"]["staff"]["sha256"] == sha256_file(example_files["staff"])
    assert manifest["config"]["sha256"] == sha256_file(SEEDS2_CONFIG)
    assert sum(manifest["totals"].values()) == 108
    assert sum(sum(row.values()) for row in manifest["counts"].values()) == 108


def test_assign_refuses_to_overwrite_a_sealed_allocation(fresh_run, example_files):
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in fresh_run.iterdir()}
    result = runner.invoke(app, ["assign", str(SEEDS2_CONFIG), "--pdus", str(example_files["pdus"]),
                                 "--staff", str(example_files["staff"]), "--out", str(fresh_run)])
    assert result.exit_code == 2
    assert "already holds a sealed allocation" in result.output
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in fresh_run.iterdir()}
    assert before == after


def test_register_allocation_and_events_cannot_be_changed(fresh_run):
    with sqlite3.connect(fresh_run / "register.sqlite") as connection:
        for statement in ["UPDATE allocation SET \"group\" = 'Control'", "DELETE FROM events"]:
            with pytest.raises(sqlite3.DatabaseError):
                connection.execute(statement)


def test_verify_matches_then_detects_a_changed_roster(fresh_run, example_files, tmp_path):
    result = runner.invoke(app, ["verify", str(fresh_run)])
    assert result.exit_code == 0, result.output
    assert "identical allocation" in result.output
    pdus = pd.read_csv(example_files["pdus"])
    reordered = tmp_path / "pdus.csv"
    pdus.iloc[::-1].to_csv(reordered, index=False)
    result = runner.invoke(app, ["verify", str(fresh_run), "--pdus", str(reordered)])
    assert result.exit_code == 0, result.output
    assert "differs byte-for-byte" in " ".join(result.output.split())
    pdus.drop(index=[5]).to_csv(reordered, index=False)
    staff = pd.read_csv(example_files["staff"])
    trimmed_staff = tmp_path / "staff.csv"
    staff[staff["pdu_code"] != pdus.loc[5, "pdu_code"]].to_csv(trimmed_staff, index=False)
    result = runner.invoke(app, ["verify", str(fresh_run), "--pdus", str(reordered),
                                 "--staff", str(trimmed_staff)])
    assert result.exit_code == 1
    assert "MISMATCH" in result.output
    events = sqlite3.connect(fresh_run / "register.sqlite").execute(
        "SELECT kind FROM events").fetchall()
    assert [k for (k,) in events].count("verified") == 3


def test_verify_detects_a_changed_seed(fresh_run, tmp_path):
    changed = tmp_path / "seeds2.toml"
    changed.write_text(SEEDS2_CONFIG.read_text().replace("seed = 20220214", "seed = 1"))
    result = runner.invoke(app, ["verify", str(fresh_run), "--config", str(changed)])
    assert result.exit_code == 1
    assert "not the one the allocation used" in " ".join(result.output.split())


def test_lookup_by_staff_id_email_and_pdu(national_run):
    staff = national_run.staff_allocation
    person = staff[staff["course"] == "SEEDS2 for Practitioners"].iloc[0]
    for query in [person["staff_id"], person["email"].upper()]:
        result = runner.invoke(app, ["lookup", str(national_run.directory), query])
        assert result.exit_code == 0, result.output
        assert person["group"] in result.output and person["pdu_code"] in result.output
    result = runner.invoke(app, ["lookup", str(national_run.directory), "york"])
    assert result.exit_code == 0 and "N55YRK" in result.output
    result = runner.invoke(app, ["lookup", str(national_run.directory), "Yrok"])
    assert result.exit_code == 1
    assert "Did you mean 'York'" in result.output


def test_formula_like_text_is_written_as_text(tmp_path):
    pdus = small_pdus()
    staff = small_staff(pdus)
    staff.loc[0, "name"] = "=HYPERLINK(\"http://x\")"
    staff.loc[1, "name"] = "@SUM(A1)"
    design = write_trial(tmp_path / "trial", pdus=pdus, staff=staff)
    out = tmp_path / "out"
    assert runner.invoke(app, ["assign", str(design), "--out", str(out)]).exit_code == 0
    text = (out / "staff_allocation.csv").read_text()
    assert "'=HYPERLINK" in text and "'@SUM(A1)" in text
    sheet = load_workbook(out / "allocation.xlsx")["Staff"]
    cells = [c for row in sheet.iter_rows() for c in row if isinstance(c.value, str)
             and "HYPERLINK" in c.value]
    assert cells and all(c.data_type == "s" for c in cells)


def evalkit_command() -> list[str]:
    installed = shutil.which("evalkit", path=str(Path(sys.executable).parent))
    return [installed] if installed else [sys.executable, "-m", "evalkit"]


@pytest.mark.slow
def test_subprocess_end_to_end_on_the_shipped_example(tmp_path):
    command = evalkit_command()
    example = tmp_path / "example"
    done = subprocess.run([*command, "example", str(example)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "run"
    done = subprocess.run([*command, "assign", str(SEEDS2_CONFIG), "--pdus",
                           str(example / "pdus.csv"), "--staff", str(example / "staff.csv"),
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Units per stratum and group" in done.stdout
    done = subprocess.run([*command, "verify", str(out)], capture_output=True, text=True)
    assert done.returncode == 0 and "match" in done.stdout
    again = subprocess.run([*command, "assign", str(SEEDS2_CONFIG), "--pdus",
                            str(example / "pdus.csv"), "--staff", str(example / "staff.csv"),
                            "--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "sealed" in again.stderr
    missing = subprocess.run([*command, "lookup", str(out), "nobody@nowhere"],
                             capture_output=True, text=True)
    assert missing.returncode == 1


def test_exports_from_the_register_equal_those_written_at_assign(fresh_run, tmp_path):
    from evalkit.allocation.exports import export_allocation
    from evalkit.register import Register

    regenerated = export_allocation(Register.open(fresh_run), tmp_path)
    for name in ["allocation", "staff_allocation", "balance"]:
        assert regenerated[name].read_bytes() == (fresh_run / f"{name}.csv").read_bytes(), name


def test_rerandomised_allocation_records_its_draws_and_verifies(tmp_path):
    extra = ('[randomisation]\nmethod = "rerandomise"\nbalance_covariates = ["headcount"]\n'
             "max_abs_smd = 0.1\nmax_draws = 20000\nprobability_draws = 300")
    design = write_trial(tmp_path / "trial", fixed="[]", extra=extra)
    out = tmp_path / "out"
    result = runner.invoke(app, ["assign", str(design), "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == "rerandomise" and manifest["draws_tried"] >= 1
    assert manifest["accepted_balance"]["accepted_value"] <= 0.1
    assert manifest["probabilities"]["method"] == "simulated"
    assert manifest["probabilities"]["draws"] == 300
    verified = runner.invoke(app, ["verify", str(out)])
    assert verified.exit_code == 0, verified.output

"""Every bad input exits 2 with one message naming file, row and column, and writes nothing."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from tests.helpers import small_pdus, small_staff, write_trial

runner = CliRunner()


def run_assign_cli(design_path, out):
    return runner.invoke(app, ["assign", str(design_path), "--out", str(out)])


def assert_rejected(result, out, *fragments):
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in message, message
    assert not out.exists() or not any(out.iterdir())
    leftovers = [p for p in out.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def _missing_column(pdus, staff):
    return pdus.drop(columns=["region"]), staff


def _blank_id(pdus, staff):
    staff.loc[5, "staff_id"] = ""
    return pdus, staff


def _duplicate_pdu(pdus, staff):
    pdus.loc[3, "pdu_code"] = pdus.loc[2, "pdu_code"]
    return pdus, staff


def _duplicate_staff(pdus, staff):
    staff.loc[9, "staff_id"] = staff.loc[4, "staff_id"]
    return pdus, staff


def _two_regions(pdus, staff):
    extra = pdus.iloc[[0]].assign(region="Region 2")
    return pd.concat([pdus, extra], ignore_index=True), staff


def _unknown_pdu(pdus, staff):
    staff.loc[7, "pdu_code"] = "P0O1"
    return pdus, staff


def _unknown_grade(pdus, staff):
    staff.loc[2, "grade"] = "SP0"
    return pdus, staff


ROSTER_CASES = [
    (_missing_column, ["pdus.csv", "row 1", "'region'", "missing required column"]),
    (_blank_id, ["staff.csv", "row 7", "'staff_id'", "blank staff ID"]),
    (_duplicate_pdu, ["pdus.csv", "row 5", "'pdu_code'", "duplicate ID 'P002'", "rows 4, 5"]),
    (_duplicate_staff, ["staff.csv", "row 11", "'staff_id'", "duplicate ID"]),
    (_two_regions, ["pdus.csv", "row 17", "'region'", "listed in two regions"]),
    (_unknown_pdu, ["staff.csv", "row 9", "'pdu_code'", "unknown PDU 'P0O1'", "'P001'"]),
    (_unknown_grade,
     ["staff.csv", "row 4", "'grade'", "unknown grade 'SP0'", "Did you mean 'SPO'"]),
]


@pytest.mark.parametrize(("corrupt", "fragments"), ROSTER_CASES,
                         ids=[c[0].__name__.strip("_") for c in ROSTER_CASES])
def test_bad_roster_is_rejected_and_nothing_written(tmp_path, corrupt, fragments):
    pdus, staff = corrupt(small_pdus(), small_staff(small_pdus()))
    design = write_trial(tmp_path / "trial", pdus=pdus, staff=staff)
    out = tmp_path / "out"
    assert_rejected(run_assign_cli(design, out), out, *fragments)


DESIGN_CASES = [
    ({"fixed": '["Cmabridgeshire"]'}, ["arms[0].fixed", "'Cmabridgeshire' matches no unit"]),
    ({"treatment_ratio": -1}, ["arms[1].ratio", "greater than or equal to 0"]),
    ({"extra_trial": "colour = 1"}, ["unknown key 'trial.colour'", "allowed keys here"]),
    ({"extra_trial": "unit = 'pdus'"}, ["malformed TOML"]),
    ({"extra": "[randomisation]\nmethod = 'random'"}, ["randomisation.method", "'complete'"]),
]


@pytest.mark.parametrize(("options", "fragments"), DESIGN_CASES,
                         ids=["fixed-not-found", "negative-ratio", "unknown-key", "malformed",
                              "bad-method"])
def test_bad_design_is_rejected_and_nothing_written(tmp_path, options, fragments):
    design = write_trial(tmp_path / "trial", **options)
    out = tmp_path / "out"
    assert_rejected(run_assign_cli(design, out), out, *fragments)


def test_cmabridgeshire_suggests_cambridgeshire(tmp_path, example_files):
    design = tmp_path / "seeds2.toml"
    source = (pytest.importorskip("tests.conftest").SEEDS2_CONFIG).read_text()
    design.write_text(source.replace('"Cambridgeshire and Peterborough"', '"Cmabridgeshire"'))
    out = tmp_path / "out"
    result = runner.invoke(app, ["assign", str(design), "--pdus", str(example_files["pdus"]),
                                 "--staff", str(example_files["staff"]), "--out", str(out)])
    assert_rejected(result, out, "'Cmabridgeshire' matches no unit",
                    "Did you mean 'Cambridgeshire and Peterborough'")


def test_unit_fixed_in_two_arms(tmp_path):
    design = write_trial(tmp_path / "trial")
    text = design.read_text().replace('name = "Treatment"\n',
                                      'name = "Treatment"\nfixed = ["P000"]\n')
    design.write_text(text)
    out = tmp_path / "out"
    assert_rejected(run_assign_cli(design, out), out, "fixed in two arms", "'Early Adopter'")


def test_all_ratios_zero(tmp_path):
    design = write_trial(tmp_path / "trial", treatment_ratio=0)
    design.write_text(design.read_text().replace("ratio = 1\ncontrol", "ratio = 0\ncontrol"))
    out = tmp_path / "out"
    assert_rejected(run_assign_cli(design, out), out, "all ratios are zero")


def test_stratum_with_no_units(tmp_path):
    pdus = small_pdus()
    staff = small_staff(pdus)
    staff = staff[staff["pdu_code"] != "P103"]
    design = write_trial(tmp_path / "trial", unit="staff", fixed="[]", pdus=pdus, staff=staff)
    out = tmp_path / "out"
    assert_rejected(run_assign_cli(design, out), out, "pdus.csv", "row 10",
                    "stratum with no units", "'P103'")


def test_non_utf8_csv_is_rejected_clearly(tmp_path):
    design = write_trial(tmp_path / "trial")
    staff_path = tmp_path / "trial" / "staff.csv"
    staff_path.write_bytes(staff_path.read_bytes().replace(b"Person P000 0", b"Pers\xe9 P000 0"))
    out = tmp_path / "out"
    assert_rejected(run_assign_cli(design, out), out, "staff.csv", "not valid UTF-8")


def test_utf8_bom_and_xlsx_rosters_are_accepted(tmp_path):
    design = write_trial(tmp_path / "trial")
    folder = tmp_path / "trial"
    pdus = pd.read_csv(folder / "pdus.csv")
    (folder / "pdus.csv").write_bytes("\ufeff".encode() + (folder / "pdus.csv").read_bytes())
    pd.read_csv(folder / "staff.csv").to_excel(folder / "staff.xlsx", index=False)
    result = runner.invoke(app, ["assign", str(design), "--staff", str(folder / "staff.xlsx"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    allocation = pd.read_csv(tmp_path / "out" / "allocation.csv")
    assert set(allocation["unit_id"]) == set(pdus["pdu_code"])

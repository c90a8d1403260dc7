"""Files as Excel on Windows writes them are read, through the CLI (issue 10 item 4).

Windows-1252 (said in the output), semicolon or tab delimiters, a BOM, trailing blank rows,
headers in any case and spacing, XLSX sheets by name, and monitor's status map and mixed
dates. Anything ambiguous stays an error that names the fix.
"""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from tests.helpers import small_pdus, small_staff, write_trial

runner = CliRunner()


def staff_with_accent() -> pd.DataFrame:
    staff = small_staff(small_pdus())
    staff.loc[0, "name"] = "Siân Ó Briain"
    return staff


def assign(tmp_path, design, *options):
    out = tmp_path / "out"
    result = runner.invoke(app, ["assign", str(design), *options, "--out", str(out)],
                           env={"COLUMNS": "200"})
    return result, out


def assigned_staff(out) -> pd.DataFrame:
    return pd.read_csv(out / "staff_allocation.csv", dtype=str, keep_default_na=False)


def write_staff(path, frame: pd.DataFrame, **options) -> None:
    text = frame.to_csv(index=False, **{k: v for k, v in options.items() if k == "sep"})
    path.write_bytes(text.encode(options.get("encoding", "utf-8")))


@pytest.mark.parametrize(("encoding", "sep", "note"), [
    ("cp1252", ",", "read as Windows-1252"),
    ("utf-8-sig", ",", None),
    ("utf-8", ";", "read as semicolon-separated"),
    ("cp1252", ";", "read as Windows-1252"),
    ("utf-8", "\t", "read as tab-separated"),
], ids=["windows-1252", "bom", "semicolon", "windows-1252-semicolon", "tab"])
def test_excel_csv_variants_are_read(tmp_path, encoding, sep, note):
    design = write_trial(tmp_path / "trial")
    staff = staff_with_accent()
    write_staff(tmp_path / "trial" / "staff.csv", staff, sep=sep, encoding=encoding)
    result, out = assign(tmp_path, design)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    if note:
        assert note in output and "staff.csv" in output
    else:
        assert "read as" not in output
    written = assigned_staff(out)
    assert len(written) == len(staff)
    assert "Siân Ó Briain" in set(written["name"])


def test_trailing_blank_rows_are_ignored_and_row_numbers_stay_true(tmp_path):
    design = write_trial(tmp_path / "trial")
    path = tmp_path / "trial" / "staff.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [",,,,,", ",,,,,", ""]) + "\n")
    result, out = assign(tmp_path, design)
    assert result.exit_code == 0, result.output
    assert len(assigned_staff(out)) == len(lines) - 1

    broken = lines[:3] + [",,,,,"] + lines[3:]
    broken[5] = broken[5].replace(",PO,", ",Boss,").replace(",PSO,", ",Boss,") \
        .replace(",SPO,", ",Boss,").replace(",CA,", ",Boss,")
    path.write_text("\n".join(broken) + "\n")
    result, _ = assign(tmp_path / "again", design)
    assert result.exit_code == 2
    assert "row 6" in result.output and "'Boss'" in result.output   # the row Excel shows


def test_headers_match_ignoring_case_spaces_and_punctuation(tmp_path):
    pdus = small_pdus().rename(columns={"pdu_code": "PDU Code", "pdu_name": "PDU name",
                                        "region": "Region"})
    staff = small_staff(small_pdus()).rename(columns={"staff_id": "Staff ID", "grade": "Grade",
                                                      "pdu_code": "PDU-code"})
    design = write_trial(tmp_path / "trial", pdus=pdus, staff=staff)
    result, out = assign(tmp_path, design)
    assert result.exit_code == 0, result.output
    assert set(assigned_staff(out)["staff_id"]) == set(staff["Staff ID"])


def test_a_missing_column_names_the_fix_the_right_way_round(tmp_path):
    staff = small_staff(small_pdus()).rename(columns={"staff_id": "Staf ID"})
    design = write_trial(tmp_path / "trial", staff=staff)
    result, _ = assign(tmp_path, design)
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "missing required column 'staff_id'" in message
    assert "rename that column to 'staff_id'" in message and "'Staf ID'" in message


def test_two_headers_meaning_one_column_is_an_error_naming_both(tmp_path):
    staff = small_staff(small_pdus())
    staff["Staff-ID"] = staff["staff_id"]
    design = write_trial(tmp_path / "trial", staff=staff)
    result, _ = assign(tmp_path, design)
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "'staff_id'" in message and "'Staff-ID'" in message and "delete or rename" in message


def test_xlsx_sheet_chosen_by_name(tmp_path):
    design = write_trial(tmp_path / "trial")
    book = tmp_path / "roster.xlsx"
    with pd.ExcelWriter(book) as writer:
        pd.DataFrame({"note": ["cover sheet"]}).to_excel(writer, sheet_name="Read me",
                                                         index=False)
        small_pdus().to_excel(writer, sheet_name="PDUs", index=False)
    result, _ = assign(tmp_path, design, "--pdus", str(book))
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "roster.xlsx#SHEET" in message and "(Read me, PDUs)" in message
    result, out = assign(tmp_path / "named", design, "--pdus", f"{book}#PDUs")
    assert result.exit_code == 0, result.output
    allocation = pd.read_csv(out / "allocation.csv")
    assert set(allocation["unit_id"]) == set(small_pdus()["pdu_code"])


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("excel-monitor")
    design = write_trial(base / "trial")
    result = runner.invoke(app, ["assign", str(design), "--out", str(base / "run")])
    assert result.exit_code == 0, result.output
    return base / "run"


def test_monitor_maps_statuses_and_reads_excel_headers_and_mixed_dates(small_run, tmp_path):
    export = tmp_path / "export.csv"
    export.write_bytes(
        "Staff ID;Course;Status;Date\n"
        "P000-S0;SEEDS2 for Practitioners;Enrolled;05/03/2022\n"
        "P000-S1;SEEDS2 for practitioners;Completed;2022-04-01T09:30:00+01:00\n"
        "P001-S0;SEEDS2 for Practitioners;Booked;2022-06-02 10:00\n"
        ";;;\n".encode("cp1252"))
    argv = ["monitor", str(small_run), "--bookings", str(export), "--as-of", "2022-07-01"]
    refused = runner.invoke(app, argv)
    assert refused.exit_code == 2
    assert "--map-status 'Enrolled=booked'" in " ".join(refused.output.split())
    result = runner.invoke(app, [*argv, "--map-status", "Enrolled=booked"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "read as semicolon-separated" in " ".join(result.output.split())
    staff = pd.read_csv(small_run / "monitoring.csv", dtype=str, keep_default_na=False)
    booked = staff.set_index("staff_id")
    assert booked.loc["P000-S0", "first_booked"].startswith("2022-03-05")
    assert booked.loc["P000-S1", "first_completed"].startswith("2022-04-01")

"""Workbooks as people use them: date cells, numbers, readable headers, autofilters, About."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.io.xlsx import readable_label, write_workbook, write_xlsx

sys.path.insert(0, str(Path(__file__).parent))
from helpers import write_trial  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def windowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("excel")
    design = write_trial(folder)
    run = folder / "run"
    assert runner.invoke(app, ["assign", str(design), "--out", str(run)]).exit_code == 0
    result = runner.invoke(app, ["windows", str(run)])
    assert result.exit_code == 0, result.output
    return run


def test_dates_are_date_cells_and_timestamps_keep_their_time(tmp_path: Path) -> None:
    frame = pd.DataFrame({"day": [dt.date(2022, 3, 1), None],
                          "when": pd.to_datetime(["2022-03-01 12:30", None]),
                          "iso": ["2022-06-01", ""]})
    book = openpyxl.load_workbook(write_workbook(tmp_path / "d.xlsx", {"dates": frame},
                                                 about={"trial": "T"}))
    sheet = book["Dates"]
    assert sheet["A2"].is_date and sheet["A2"].value.date() == dt.date(2022, 3, 1)
    assert sheet["A2"].number_format == "yyyy-mm-dd"
    assert sheet["B2"].value == dt.datetime(2022, 3, 1, 12, 30)
    assert sheet["C2"].is_date and sheet["C2"].value.date() == dt.date(2022, 6, 1)
    assert sheet["A3"].value is None and sheet["C3"].value is None


def test_plain_write_xlsx_keeps_machine_headers_and_text(tmp_path: Path) -> None:
    frame = pd.DataFrame({"window_start": ["2022-06-01"], "share": [0.1 + 0.2]})
    sheet = openpyxl.load_workbook(write_xlsx(tmp_path / "p.xlsx", {"s": frame}))["s"]
    assert [c.value for c in sheet[1]] == ["window_start", "share"]
    assert sheet["A2"].data_type == "s" and sheet["B2"].value == 0.1 + 0.2
    assert sheet.auto_filter.ref == "A1:B2"


def test_floats_are_rounded_and_empty_sheets_say_why(tmp_path: Path) -> None:
    frame = pd.DataFrame({"mean_headcount": [63.962500000000006, 2.0]})
    empty = pd.DataFrame(columns=["outcome", "detail"])
    book = openpyxl.load_workbook(write_workbook(
        tmp_path / "r.xlsx", {"balance": frame, "deviations": empty}, about={"seed": 42},
        empty_notes={"deviations": "No deviations from the plan were recorded."}))
    assert book.sheetnames == ["About", "Balance", "Deviations"]
    assert book["Balance"]["A1"].value == "Mean headcount"
    assert book["Balance"]["A2"].value == 63.9625
    assert book["Deviations"]["A2"].value == "No deviations from the plan were recorded."
    assert book["About"]["A2"].value == "Seed" and book["About"]["B2"].value == 42


def test_readable_labels() -> None:
    assert readable_label("window_start") == "Window start"
    assert readable_label("staff_id") == "Staff ID"
    assert readable_label("pdu_code") == "PDU code"
    assert readable_label("p_control") == "Probability of control"
    assert readable_label("Already readable") == "Already readable"


def test_booking_windows_workbook_is_typed_filtered_and_says_where_it_comes_from(
        windowed: Path) -> None:
    book = openpyxl.load_workbook(windowed / "booking_windows.xlsx")
    assert book.sheetnames[0] == "About"
    about = {row[0].value: row[1].value for row in book["About"].iter_rows(min_row=2)}
    assert about["Trial"] == "Small trial" and about["Seed"] == 42
    assert len(about["Register SHA-256"]) == 64 and about["Evalkit version"]
    assert about["Generated at"] and about["Register event reflected"].startswith("#")
    rows = book["Booking windows"]
    headers = [c.value for c in rows[1]]
    assert "Window start" in headers and "window_start" not in headers
    start = rows.cell(2, headers.index("Window start") + 1)
    csv_rows = pd.read_csv(windowed / "booking_windows.csv", dtype=str, keep_default_na=False)
    assert start.is_date
    assert start.value.date().isoformat() == csv_rows.loc[0, "window_start"]
    assert "window_start" in csv_rows.columns  # the CSV keeps the names scripts use
    for sheet in book.worksheets[1:]:
        assert sheet.freeze_panes == "A2"
        assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, sheet.max_column).column_letter}" \
                                        f"{sheet.max_row}", sheet.title
        if sheet.max_row == 2 and sheet["A1"].value == "Note":
            assert "no" in sheet["A2"].value.lower()
    numbers = book["By PDU"]
    staff_col = [c.value for c in numbers[1]].index("Staff") + 1
    assert all(isinstance(numbers.cell(r, staff_col).value, int)
               for r in range(2, numbers.max_row + 1))

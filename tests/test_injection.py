"""Nothing user-written becomes code: formulas in CSV headers and cells are escaped, XLSX text
stays text, Markdown and HTML briefings carry no live HTML, and no file name is built from
raw user text (issue 9 items 3 and 4)."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.io.files import safe_file_name, write_csv, write_folder
from tests.helpers import small_pdus, small_staff, write_trial

runner = CliRunner()
FORMULA_COURSE = '=HYPERLINK("http://evil.example/x","Click")'
SCRIPT_NAME = "<script>alert(1)</script>"
IMG_NAME = "<img src=x onerror=alert(2)>"
FORMULA_NAME = "=cmd|' /C calc'!A0"
LIVE_HTML = ("<script", "<img", "onerror=alert(2)>")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> Path:
    """A small sealed run whose names are hostile, with windows and guidance written."""
    base = tmp_path_factory.mktemp("injection")
    pdus = small_pdus()
    pdus.loc[1, "pdu_name"] = SCRIPT_NAME
    pdus.loc[2, "pdu_name"] = FORMULA_NAME
    staff = small_staff(pdus)
    staff.loc[4, "name"] = IMG_NAME
    staff.loc[5, "name"] = "@SUM(1+1)"
    design = write_trial(base / "trial", pdus=pdus, staff=staff)
    text = design.read_text().replace('name = "SEEDS2 for Practitioners"',
                                      f"name = '{FORMULA_COURSE}'")
    design.write_text(text.replace('name = "Small trial"', 'name = "Small <b>trial</b> & co"'))
    run = base / "run"
    for argv in (["assign", str(design), "--out", str(run)], ["windows", str(run)],
                 ["guidance", str(run)]):
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, (argv, result.output)
    return run


def test_no_csv_header_or_cell_starts_like_a_formula(hostile_run):
    csvs = sorted(hostile_run.rglob("*.csv"))
    assert len(csvs) >= 5
    seen_course = False
    for path in csvs:
        with open(path, newline="", encoding="utf-8") as handle:
            for number, record in enumerate(csv.reader(handle), start=1):
                for cell in record:
                    assert not cell.startswith(("=", "@")), (path.name, number, cell)
                    seen_course |= cell == "'" + FORMULA_COURSE
    assert seen_course   # the course name was written, escaped


def test_formula_like_headers_are_escaped_like_cells(tmp_path):
    frame = pd.DataFrame({FORMULA_COURSE: ["=1+1", "plain"], "staff": [1, 2]})
    text = write_csv(tmp_path / "x.csv", frame).read_text(encoding="utf-8")
    header, first = text.splitlines()[:2]
    assert header.startswith("\"'=HYPERLINK(") and first.startswith("'=1+1")
    assert list(frame.columns)[0] == FORMULA_COURSE   # the caller's frame is untouched


def test_xlsx_text_that_looks_like_a_formula_stays_text(hostile_run):
    book = openpyxl.load_workbook(hostile_run / "allocation.xlsx")
    looked_at = 0
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.lstrip("'").startswith("="):
                    assert cell.data_type == "s", (sheet.title, cell.coordinate, cell.value)
                    looked_at += 1
    assert looked_at >= 1


def test_briefings_and_guidance_carry_no_live_html(hostile_run):
    pages = [*sorted((hostile_run / "briefings").iterdir()), hostile_run / "guidance.html"]
    markdown = [p for p in pages if p.suffix == ".md"]
    assert len(markdown) == 15
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for marker in LIVE_HTML:
            assert marker not in text, (page.name, marker)
        assert "<b>trial</b>" not in text, page.name
    briefing = (hostile_run / "briefings" / "P001.md").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in briefing   # shown, not run
    assert "Small &lt;b&gt;trial&lt;/b&gt; &amp; co" in briefing
    page = (hostile_run / "briefings" / "P001.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&amp;lt;" not in page


def test_briefing_files_are_named_from_codes_only(hostile_run):
    names = {p.name for p in (hostile_run / "briefings").iterdir()}
    codes = set(small_pdus()["pdu_code"])
    assert names == {f"{c}{suffix}" for c in codes for suffix in (".md", ".html")} | \
        {"index.html"}


@pytest.mark.parametrize("text", ["../../../../tmp/x", "a/b", "..", ".", "", "C:\\x", "a b"])
def test_safe_file_name_never_leaves_its_folder(tmp_path, text):
    name = safe_file_name(text)
    assert name and "/" not in name and "\\" not in name and name not in {".", ".."}
    assert safe_file_name(text) == name != safe_file_name(text + "!")   # stable, distinct
    folder = write_folder(tmp_path / "out", {f"{name}.md": "x"})
    assert [p.name for p in folder.iterdir()] == [f"{name}.md"]


@pytest.mark.parametrize("name", ["../x.md", "a/b.md", "..", ""])
def test_write_folder_refuses_names_that_are_not_plain(tmp_path, name):
    with pytest.raises(ValueError, match="not a plain file name"):
        write_folder(tmp_path / "out", {name: "x"})
    assert not (tmp_path / "out").exists()


def test_calendar_descriptions_are_literal_plain_text(hostile_run):
    icalendar = pytest.importorskip("icalendar")
    calendars = sorted((hostile_run / "calendars").glob("*.ics"))
    assert calendars
    for path in calendars:
        for event in icalendar.Calendar.from_ical(path.read_bytes()).walk("VEVENT"):
            description = str(event.get("DESCRIPTION", ""))
            assert "&lt;" not in description and "&amp;" not in description, path.name
            if "Guidance for" in description:
                assert "Small <b>trial</b> & co" in description   # plain text, as written

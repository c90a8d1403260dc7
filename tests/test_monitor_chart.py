"""The completion chart: SVG written from the arrays, readable, deterministic, no personal data."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.examples.bookings import write_example_bookings
from evalkit.io.figures import plot_style
from evalkit.monitoring.chart import AXIS_TITLE, TITLE, chart_svg
from evalkit.monitoring.report import run_monitor
from tests.turnover_helpers import small_pdu_run_fixture  # noqa: F401 (fixture)

SVG = "{http://www.w3.org/2000/svg}"
WEEKS = np.array(["2022-03-07", "2022-03-14", "2022-03-21"], dtype="datetime64[us]")
SERIES = [("Treatment", np.array([10.0, 40.0, 75.5])), ("Control", np.array([0.0, 1.5, 2.0]))]
# The whole SVG of WEEKS and SERIES: a change here changes monitoring.html's chart
PINNED_SHA256 = "f2e5d0f2715cb1da24e9adc2011f601b8231dc9aefa1f4c034448ebe739ec5ca"


def parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def test_an_accessible_svg_with_title_and_description() -> None:
    svg = chart_svg(WEEKS, SERIES)
    assert svg.startswith('<svg role="img" ') and "<?xml" not in svg
    root = parsed(svg)
    assert root.find(f"{SVG}title").text == TITLE
    assert root.find(f"{SVG}desc").text == ("Weekly from 7 Mar 2022 to the week of 21 Mar 2022. "
                                            "Latest: Treatment 75.5%; Control 2.0%.")
    shown = texts(root)
    assert AXIS_TITLE in shown and {"0", "20", "40", "60", "80", "100"} <= set(shown)
    assert {"Treatment", "Control"} <= set(shown)  # the legend


def test_each_group_is_drawn_with_its_colour_and_line_style() -> None:
    root = parsed(chart_svg(WEEKS, SERIES))
    paths = list(root.iter(f"{SVG}path"))
    assert [p.get("stroke") for p in paths] == [plot_style(g)["color"] for g, _ in SERIES]
    assert paths[0].get("stroke-dasharray") is None  # Treatment: solid
    assert paths[1].get("stroke-dasharray") == "7 6"  # Control: dashed
    legend = [line for line in root.iter(f"{SVG}line") if line.get("stroke-width") == "2.5"]
    assert [line.get("stroke-dasharray") for line in legend] == [None, "7 6"]


def test_steps_hold_each_week_and_the_last_for_a_week() -> None:
    """y is 240 px tall (0 % at the bottom); x runs over the weeks and one more week."""
    paths = list(parsed(chart_svg(WEEKS, SERIES)).iter(f"{SVG}path"))
    assert paths[0].get("d") == "M0.0 216.0H333.3V144.0H666.7V58.8H1000.0"
    assert paths[1].get("d") == "M0.0 240.0H333.3V236.4H666.7V235.2H1000.0"


def test_months_label_a_long_span_and_the_year_shows_where_it_changes() -> None:
    weeks = np.arange(np.datetime64("2022-02-28"), np.datetime64("2023-04-01"),
                      np.timedelta64(7, "D"))
    series = [("Early Adopter", np.linspace(5, 80, len(weeks)))]
    shown = texts(parsed(chart_svg(weeks, series)))
    labels = shown[shown.index("100") + 1:]
    assert labels == ["Mar", "2022", "May", "Jul", "Sep", "Nov", "Jan", "2023", "Mar"]


def test_an_empty_chart_says_so() -> None:
    svg = chart_svg(np.array([], dtype="datetime64[ns]"), [])
    root = parsed(svg)
    assert "No completions yet" in texts(root)
    assert root.find(f"{SVG}path") is None


def test_one_week() -> None:
    root = parsed(chart_svg(WEEKS[:1], [("Treatment", np.array([12.5]))]))
    assert root.find(f"{SVG}desc").text == "The week of 7 Mar 2022. Latest: Treatment 12.5%."
    assert [p.get("d") for p in root.iter(f"{SVG}path")] == ["M0.0 210.0H1000.0"]


def test_group_names_are_escaped() -> None:
    root = parsed(chart_svg(WEEKS, [("A & <B>", np.array([1.0, 2.0, 3.0]))]))
    assert "A & <B>" in texts(root)


def test_the_same_bytes_in_another_process() -> None:
    """No hash seed, clock or id in the SVG: another interpreter writes the same bytes."""
    code = ("import numpy as np, sys; from evalkit.monitoring.chart import chart_svg\n"
            "w = np.array(['2022-03-07', '2022-03-14', '2022-03-21'], dtype='datetime64[us]')\n"
            "s = [('Treatment', np.array([10.0, 40.0, 75.5])), "
            "('Control', np.array([0.0, 1.5, 2.0]))]\n"
            "sys.stdout.write(chart_svg(w, s))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": "123"}).stdout
    assert other == chart_svg(WEEKS, SERIES)


def test_the_svg_is_pinned() -> None:
    digest = hashlib.sha256(chart_svg(WEEKS, SERIES).encode()).hexdigest()
    assert digest == PINNED_SHA256


def test_monitor_page_chart_has_no_personal_data_and_needs_no_matplotlib(
        small_pdu_run: Path, tmp_path: Path) -> None:
    """The chart shows group percentages only; monitor runs without importing matplotlib."""
    run = tmp_path / "run"
    shutil.copytree(small_pdu_run, run)
    bookings = write_example_bookings(run, tmp_path / "bookings.csv")
    code = ("import sys, datetime as dt; from pathlib import Path\n"
            "from evalkit.monitoring.report import run_monitor\n"
            "run_monitor(Path(sys.argv[1]), Path(sys.argv[2]), as_of=dt.date(2023, 12, 31))\n"
            "print('matplotlib' in sys.modules)")
    loaded = subprocess.run([sys.executable, "-c", code, str(run), str(bookings)],
                            capture_output=True, text=True, check=True).stdout.split()[-1]
    assert loaded == "False"
    page = (run / "monitoring.html").read_text(encoding="utf-8")
    svg = page[page.index("<svg"):page.index("</svg>\n</svg>")]
    staff = pd.read_csv(run / "staff_allocation.csv", dtype=str, keep_default_na=False)
    for column in ("staff_id", "name", "email"):
        assert not [value for value in staff[column] if value and value in svg], column
    assert run_monitor(run, bookings, as_of=dt.date(2023, 12, 31)).files["html"].read_text(
        encoding="utf-8") == page  # the same page again

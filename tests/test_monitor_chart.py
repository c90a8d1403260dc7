"""The completion chart: drawn by a helper process or in process, the same SVG either way."""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from evalkit.examples.bookings import write_example_bookings
from evalkit.monitoring import chart
from evalkit.monitoring.chart import ChartProcess, chart_svg
from evalkit.monitoring.report import run_monitor
from tests.turnover_helpers import small_pdu_run_fixture  # noqa: F401 (fixture)

WEEKS = np.array(["2022-03-07", "2022-03-14", "2022-03-21"], dtype="datetime64[us]")
SERIES = [("Treatment", np.array([10.0, 40.0, 75.5])), ("Control", np.array([0.0, 1.5, 2.0]))]


@pytest.fixture(scope="module")
def expected() -> str:
    return chart_svg(WEEKS, SERIES)


def test_helper_draws_the_same_svg(expected: str) -> None:
    with ChartProcess(helper=True) as process:
        assert process._process is not None
        process.submit(WEEKS, SERIES)
        assert process.result() == expected
        assert process._process is None


def test_no_helper_draws_here(expected: str) -> None:
    with ChartProcess(helper=False) as process:
        assert process._process is None
        process.submit(WEEKS, SERIES)
        assert process.result() == expected


@pytest.mark.parametrize("executable", ["/nonexistent/python", "/bin/echo", "/bin/false"])
def test_a_failing_helper_falls_back(monkeypatch: pytest.MonkeyPatch, expected: str,
                                     executable: str) -> None:
    """The helper cannot start, prints something that is not the chart, or fails."""
    if not Path(executable).exists() and executable != "/nonexistent/python":
        pytest.skip(f"{executable} not on this system")
    monkeypatch.setattr(sys, "executable", executable)
    with ChartProcess(helper=True) as process:
        process.submit(WEEKS, SERIES)
        assert process.result() == expected


def test_an_empty_chart() -> None:
    with ChartProcess(helper=True) as process:
        process.submit(np.array([], dtype=np.int64), [])
        assert process.result() == chart_svg(np.array([], dtype=np.int64), [])


def test_leaving_early_stops_the_helper() -> None:
    with ChartProcess(helper=True) as process:
        helper = process._process
        assert helper is not None
    assert helper.returncode is not None


def test_result_needs_a_chart() -> None:
    with ChartProcess(helper=False) as process, pytest.raises(RuntimeError):
        process.result()


@pytest.mark.parametrize(("cores", "load", "spare"), [(1, 0.0, False), (2, 0.5, True),
                                                      (2, 1.0, True), (2, 1.6, False),
                                                      (8, 6.5, True), (2, None, True)])
def test_spare_core(monkeypatch: pytest.MonkeyPatch, cores: int, load: float | None,
                    spare: bool) -> None:
    monkeypatch.setattr(chart.os, "cpu_count", lambda: cores)
    if load is None:
        monkeypatch.delattr(chart.os, "getloadavg", raising=False)
    else:
        monkeypatch.setattr(chart.os, "getloadavg", lambda: (load, load, load))
    assert chart.spare_core() is spare


def test_monitor_page_is_the_same_with_or_without_helper(small_pdu_run: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pages = []
    for spare in (True, False):
        run = tmp_path / f"run-{spare}"
        shutil.copytree(small_pdu_run, run)
        bookings = write_example_bookings(run, tmp_path / f"bookings-{spare}.csv")
        monkeypatch.setattr(chart, "spare_core", lambda spare=spare: spare)
        files = run_monitor(run, bookings, as_of=dt.date(2023, 12, 31)).files
        pages.append(files["html"].read_text(encoding="utf-8"))
    assert pages[0] == pages[1]
    assert "<svg" in pages[0]

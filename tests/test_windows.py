"""`evalkit windows`: rows, instructions, per-PDU summary, calendars, capacity, config errors."""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from icalendar import Calendar
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.errors import ConfigError
from evalkit.register import Register
from evalkit.trial.design import parse_design, window_overlap
from tests.conftest import SEEDS2_CONFIG

runner = CliRunner()


def run_windows_cli(folder: Path, *extra: str):
    return runner.invoke(app, ["windows", str(folder), *extra])


@pytest.fixture()
def windowed(fresh_run: Path) -> Path:
    result = run_windows_cli(fresh_run)
    assert result.exit_code == 0, result.output
    return fresh_run


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_one_row_per_staff_member_with_their_course_and_window(windowed: Path) -> None:
    rows = read_csv(windowed / "booking_windows.csv")
    staff = Register.open(windowed).table("staff_allocation")
    design = Register.open(windowed).design
    assert sorted(rows["staff_id"]) == sorted(staff["staff_id"])
    merged = rows.merge(staff[["staff_id", "grade"]], on="staff_id")
    for person in merged.sample(300, random_state=1).itertuples():
        course = design.course_for_grade(person.grade)
        if course is None or person.group not in course.windows:
            assert person.course == "" and person.window_start == ""
        else:
            start, end = course.windows[person.group]
            assert (person.course, person.window_start, person.window_end) == (
                course.name, start.isoformat(), end.isoformat())


def test_instructions_say_what_each_group_should_do(windowed: Path) -> None:
    rows = read_csv(windowed / "booking_windows.csv").merge(
        Register.open(windowed).table("staff_allocation")[["staff_id", "grade"]], on="staff_id")
    with_course = rows[rows["course"] != ""]
    by_group = with_course.groupby("group")["instruction"].unique()
    assert list(by_group["Treatment"]) == ["Book between 1 June and 30 September 2022"]
    assert list(by_group["Early Adopter"]) == ["Book between 1 March and 31 May 2022"]
    assert list(by_group["Control"]) == [
        "Please don't book before 1 April 2023, then book by 31 July 2023"]
    administrators = rows[(rows["grade"] == "CA") & (rows["group"] != "Not in trial")]
    assert len(administrators) > 0
    assert set(administrators["instruction"]) == {"No SEEDS2 course applies to your grade"}
    outside = rows[rows["group"] == "Not in trial"]
    assert len(outside) > 0 and (outside["course"] == "").all()


def test_pdu_summary_matches_the_rows(windowed: Path) -> None:
    rows = read_csv(windowed / "booking_windows.csv")
    summary = pd.read_csv(windowed / "booking_windows_by_pdu.csv")
    staff_columns = [c for c in summary.columns if c.endswith("(staff)")]
    assert (summary[staff_columns].sum(axis=1) == summary["staff"]).all()
    expected = rows.groupby(["pdu_code", "group"]).size()
    actual = summary.set_index(["pdu_code", "group"])["staff"]
    assert actual.sort_index().to_dict() == expected.sort_index().to_dict()
    managers = rows[rows["course"] == "SEEDS2 for Managers"].groupby("pdu_code").size()
    per_pdu = summary.groupby("pdu_code")["SEEDS2 for Managers (staff)"].sum()
    assert per_pdu[managers.index].to_dict() == managers.to_dict()
    workbook = pd.read_excel(windowed / "booking_windows.xlsx", sheet_name=None)
    assert len(workbook["Booking windows"]) == len(rows)
    assert len(workbook["By PDU"]) == len(summary)


def test_calendars_parse_back_with_all_day_events_and_stable_uids(windowed: Path,
                                                                   tmp_path: Path) -> None:
    design = Register.open(windowed).design
    files = sorted((windowed / "calendars").glob("*.ics"))
    expected = sum(len(course.windows) for course in design.courses)
    assert len(files) == expected
    uids = set()
    for path in files:
        calendar = Calendar.from_ical(path.read_bytes())
        assert str(calendar["VERSION"]) == "2.0" and "evalkit" in str(calendar["PRODID"])
        events = [e for e in calendar.walk("VEVENT") if "booking window" in str(e["SUMMARY"])]
        assert len(events) == 2  # sessions and reminders: tests/test_calendars.py
        course = next(c for c in design.courses if c.name in str(events[0]["SUMMARY"]))
        group = next(g for g in course.windows if f"({g})" in str(events[0]["SUMMARY"]))
        for event, day in zip(events, course.windows[group], strict=True):
            assert event["DTSTART"].params.get("VALUE") == "DATE"
            assert event.decoded("DTSTART") == day
            assert event.decoded("DTEND") == day + dt.timedelta(days=1)
            assert isinstance(event.decoded("DTSTAMP"), dt.datetime)
            uids.add(str(event["UID"]))
        if group == design.control_arm:
            assert "don't open" in str(events[0]["DESCRIPTION"])
    assert len(uids) == 2 * len(files)
    copy = shutil.copytree(windowed, tmp_path / "again")
    shutil.rmtree(copy / "calendars")
    assert run_windows_cli(copy).exit_code == 0
    for path in files:
        assert (copy / "calendars" / path.name).read_bytes() == path.read_bytes()


def test_over_capacity_is_warned_and_counted(fresh_run: Path) -> None:
    result = run_windows_cli(fresh_run)
    assert result.exit_code == 0
    assert "more staff than session places" in result.output
    capacity = pd.read_csv(fresh_run / "capacity.csv")
    rows = read_csv(fresh_run / "booking_windows.csv")
    design = Register.open(fresh_run).design
    over = capacity[capacity["over_capacity"]]
    assert len(over) >= 1
    for row in capacity.itertuples():
        course = next(c for c in design.courses if c.name == row.course)
        start, end = course.windows[row.group]
        places = sum(s.places for s in course.sessions if start <= s.date <= end)
        demand = ((rows["course"] == row.course) & (rows["group"] == row.group)).sum()
        assert (row.places, row.demand) == (places, demand)
        assert row.over_capacity == (demand > places)


def test_weekly_share_flags_pdus_over_the_limit(windowed: Path) -> None:
    weekly = pd.read_csv(windowed / "weekly_share.csv")
    expected = weekly["staff_in_group"] / weekly["weeks"] / weekly["staff_in_grades"]
    assert (abs(weekly["share_per_week"] - expected) < 1e-3).all()
    assert (weekly["over_limit"] == (weekly["share_per_week"] > weekly["limit"])).all()
    assert weekly["over_limit"].any()


def _seeds2_raw() -> dict:
    return tomllib.loads(SEEDS2_CONFIG.read_text(encoding="utf-8"))


def test_overlapping_windows_are_a_config_error_naming_the_key() -> None:
    raw = _seeds2_raw()
    raw["courses"][1]["windows"]["Treatment"] = ["2022-05-01", "2022-09-30"]
    with pytest.raises(ConfigError, match=r"courses\[1\]\.windows.*overlaps"):
        parse_design(raw)


def test_control_opening_before_treatment_closes_is_a_config_error() -> None:
    raw = _seeds2_raw()
    raw["courses"][0]["windows"] = {"Treatment": ["2022-06-01", "2022-09-30"],
                                    "Control": ["2022-01-01", "2022-02-01"]}
    with pytest.raises(ConfigError, match=r"courses\[0\]\.windows.*'Control' window opens"):
        parse_design(raw)


def test_missing_window_for_a_group_with_staff_fails_and_writes_nothing(fresh_run: Path) -> None:
    register = Register.open(fresh_run)
    design = register.meta("design")
    del design["courses"][0]["windows"]["Early Adopter"]
    register.set_meta("design", design)
    result = run_windows_cli(fresh_run)
    assert result.exit_code == 2
    assert "courses[0].windows" in result.output and "Early Adopter" in result.output
    assert not (fresh_run / "booking_windows.csv").exists()
    assert not (fresh_run / "calendars").exists()


def test_unknown_session_region_names_the_key(fresh_run: Path) -> None:
    register = Register.open(fresh_run)
    design = register.meta("design")
    design["courses"][0]["sessions"][0]["region"] = "Walse"
    register.set_meta("design", design)
    result = run_windows_cli(fresh_run)
    assert result.exit_code == 2
    assert "courses[0].sessions[0].region" in result.output and "Wales" in result.output


def test_windows_runs_as_a_real_command(fresh_run: Path) -> None:
    command = [sys.executable, "-c", "from evalkit.cli import app; app()"]
    completed = subprocess.run([*command, "windows", str(fresh_run)], capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert (fresh_run / "booking_windows.xlsx").exists()


day = st.dates(min_value=dt.date(2022, 1, 1), max_value=dt.date(2024, 12, 31))


@given(st.lists(st.tuples(day, day), min_size=1, max_size=4))
def test_window_overlap_accepts_exactly_disjoint_windows_with_control_last(pairs) -> None:
    names = ["Early Adopter", "Treatment", "Other", "Control"][-len(pairs):]
    windows = {n: (min(a, b), max(a, b)) for n, (a, b) in zip(names, pairs, strict=False)}
    spans = sorted(windows.values())
    disjoint = all(later[0] > earlier[1] for earlier, later in itertools.pairwise(spans))
    control_last = all(windows["Control"][0] > end for g, (_, end) in windows.items()
                       if g != "Control")
    assert (window_overlap(windows, "Control") is None) == (disjoint and control_last)

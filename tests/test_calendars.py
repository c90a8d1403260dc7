"""Calendars parse with icalendar: plain-text descriptions, sessions with places, reminders."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
from icalendar import Calendar
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.delivery.calendars import REMINDER_DAYS, plain_text

sys.path.insert(0, str(Path(__file__).parent))
from helpers import write_trial  # noqa: E402

runner = CliRunner()
SESSIONS = """sessions = [{ date = 2022-06-08, places = 5 }, { date = 2022-07-13, places = 7 },
            { date = 2023-05-10, places = 9, region = "Region 1" },
            { date = 2024-01-10, places = 3 }]
"""


@pytest.fixture(scope="module")
def calendars(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Calendar]:
    folder = tmp_path_factory.mktemp("ics")
    design = write_trial(folder, extra=SESSIONS)
    run = folder / "run"
    assert runner.invoke(app, ["assign", str(design), "--out", str(run)]).exit_code == 0
    result = runner.invoke(app, ["windows", str(run)])
    assert result.exit_code == 0, result.output
    return {p.stem: Calendar.from_ical(p.read_bytes())
            for p in sorted((run / "calendars").glob("*.ics"))}


def _sessions(calendar: Calendar) -> list:
    return [e for e in calendar.walk("VEVENT") if "session" in str(e["SUMMARY"])]


def test_one_event_per_session_inside_the_window_with_its_places(calendars) -> None:
    treatment = calendars["treatment_seeds2-for-practitioners"]
    sessions = _sessions(treatment)
    assert [e.decoded("DTSTART") for e in sessions] == [dt.date(2022, 6, 8), dt.date(2022, 7, 13)]
    assert [str(e["X-EVALKIT-PLACES"]) for e in sessions] == ["5", "7"]
    assert "5 places" in str(sessions[0]["SUMMARY"])
    assert "7 places" in str(sessions[1]["DESCRIPTION"])
    control = _sessions(calendars["control_seeds2-for-practitioners"])
    assert len(control) == 1 and "Region 1 only" in str(control[0]["SUMMARY"])
    assert _sessions(calendars["early-adopter_seeds2-for-practitioners"]) == []


def test_a_reminder_fires_before_each_window_closes(calendars) -> None:
    for calendar in calendars.values():
        closing = [e for e in calendar.walk("VEVENT") if "window closes" in str(e["SUMMARY"])]
        assert len(closing) == 1
        alarms = closing[0].walk("VALARM")
        assert len(alarms) == 1
        assert alarms[0].decoded("TRIGGER") == -dt.timedelta(days=REMINDER_DAYS)
        assert str(alarms[0]["ACTION"]) == "DISPLAY"


def test_descriptions_are_plain_text(calendars) -> None:
    for calendar in calendars.values():
        for event in calendar.walk("VEVENT"):
            text = str(event["DESCRIPTION"])
            assert "**" not in text and "##" not in text and "](" not in text, text


def test_plain_text_turns_markdown_into_lines() -> None:
    markdown = "## Guidance\n\nYou are in **Treatment**.\n* book [here](https://x.uk)\n"
    assert plain_text(markdown) == "Guidance\n\nYou are in Treatment.\n- book here (https://x.uk)"

"""The calendars evalkit writes itself are byte for byte what icalendar wrote (issue 13).

`evalkit.delivery.calendars` formats iCalendar text directly (icalendar's import and its
per-character folding were a tenth of `windows`); the reference here builds the same
calendars through icalendar, as the code did before, and the bytes must agree, for the
national example and for text that needs escaping and folding (commas, semicolons,
backslashes, carets, new lines, non-ASCII characters, long lines).
"""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Alarm, Calendar, Event

import evalkit
from evalkit.delivery import calendars
from evalkit.delivery.calendars import EVENTS, REMINDER_DAYS, event_uid, plain_text
from evalkit.delivery.instructions import day_text
from evalkit.register import Register

STAMP = dt.datetime(2024, 3, 5, 9, 7, 2, tzinfo=dt.UTC)
TEXT = st.text(alphabet=st.sampled_from(list("ab ,;:\\^\n\r\"'é€𝄞N")),
               max_size=200)


def _event(uid: str, day: dt.date, summary: str, description: str) -> Event:
    event = Event()
    for name, value in [("uid", uid), ("dtstamp", STAMP), ("dtstart", day),
                        ("dtend", day + dt.timedelta(days=1)), ("summary", summary),
                        ("description", description), ("transp", "TRANSPARENT")]:
        event.add(name, value)
    return event


def _reference(design, group: str, course: str, guidance: str) -> bytes:
    """The calendar as icalendar built it (the code before issue 13's change)."""
    spec = next(c for c in design.courses if c.name == course)
    calendar = Calendar()
    calendar.add("prodid", f"-//evalkit//{evalkit.__version__}//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", f"{design.trial.name}: {course} ({group})")
    text = plain_text(guidance)
    for which, day in zip(EVENTS, spec.windows[group], strict=True):
        event = _event(event_uid(design.trial.name, group, course, which), day,
                       f"{course}: booking window {which} ({group})",
                       f"The {group} booking window for {course} {which} on {day_text(day)}."
                       + (f"\n\n{text}" if text else ""))
        if which == "closes":
            alarm = Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("trigger", dt.timedelta(days=-REMINDER_DAYS))
            alarm.add("description", f"{course}: the {group} booking window closes on "
                                     f"{day_text(day)}. Book your place now if you have not.")
            event.add_component(alarm)
        calendar.add_component(event)
    for session in calendars.sessions_in_window(spec, group):
        where = f" ({session.region} only)" if session.region else ""
        event = _event(event_uid(design.trial.name, group, course,
                                 f"session|{session.date.isoformat()}|{session.region or ''}"),
                       session.date, f"{course}: session, {session.places} places{where}",
                       f"A {course} session on {day_text(session.date)} with {session.places} "
                       f"places{where}. Book it on the learning platform; places are limited.")
        event.add("x-evalkit-places", str(session.places))
        calendar.add_component(event)
    return calendar.to_ical()


def test_the_national_calendars_are_icalendars_bytes(national_run):
    design = Register.open(national_run.directory).design
    guidance = "# Guidance\n\nBook **now**, [here](https://example.org); a, b; c\\d ^e " * 9
    for course in design.courses:
        for group in course.windows:
            assert calendars.build_calendar(design, group, course.name, guidance, STAMP) \
                == _reference(design, group, course.name, guidance), (group, course.name)


@settings(max_examples=300, deadline=None)
@given(TEXT, st.integers(min_value=0, max_value=80))
def test_any_text_is_escaped_and_folded_as_icalendar_does(text, pad):
    event = Event()
    event.add("description", "x" * pad + text)
    expected = event.to_ical().decode().split("\r\n")
    line = calendars._fold(f"DESCRIPTION:{calendars._text('x' * pad + text)}")
    assert line.split("\r\n") == expected[1:-2]

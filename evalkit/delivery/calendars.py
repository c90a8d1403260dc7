"""Booking windows as iCalendar files (RFC 5545): one per group and course, with the
window's opening and closing as all-day events and the group's guidance attached."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from icalendar import Calendar, Event

import evalkit
from evalkit.delivery.instructions import day_text
from evalkit.trial.design import TrialDesign

UID_NAMESPACE = uuid.UUID("5d1c2b0e-4f6a-4c1e-9a57-3e2f8d9b6c41")
EVENTS = ("opens", "closes")


def slug(text: str) -> str:
    """Lower-case words joined by hyphens: 'Early Adopter' -> 'early-adopter'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def calendar_name(group: str, course: str) -> str:
    return f"{slug(group)}_{slug(course)}.ics"


def event_uid(trial: str, group: str, course: str, event: str) -> str:
    """Stable across runs: the same trial, group, course and event give the same UID."""
    return f"{uuid.uuid5(UID_NAMESPACE, '|'.join((trial, group, course, event)))}@evalkit"


def _stamp(created_at: str | None) -> dt.datetime:
    if created_at:
        return dt.datetime.fromisoformat(created_at).astimezone(dt.UTC)
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _event(design: TrialDesign, group: str, course: str, which: str, day: dt.date,
           description: str, stamp: dt.datetime) -> Event:
    verb = "opens" if which == "opens" else "closes"
    event = Event()
    event.add("uid", event_uid(design.trial.name, group, course, which))
    event.add("dtstamp", stamp)
    event.add("dtstart", day)
    event.add("dtend", day + dt.timedelta(days=1))
    event.add("summary", f"{course}: booking window {verb} ({group})")
    event.add("description", f"The {group} booking window for {course} {verb} on "
                             f"{day_text(day)}.\n\n{description}")
    event.add("transp", "TRANSPARENT")
    return event


def build_calendar(design: TrialDesign, group: str, course: str, guidance: str,
                   stamp: dt.datetime) -> Calendar:
    """One calendar: the window's opening and closing days for a group and course."""
    spec = next(c for c in design.courses if c.name == course)
    start, end = spec.windows[group]
    calendar = Calendar()
    calendar.add("prodid", f"-//evalkit//{evalkit.__version__}//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", f"{design.trial.name}: {course} ({group})")
    for which, day in zip(EVENTS, (start, end), strict=True):
        calendar.add_component(_event(design, group, course, which, day, guidance, stamp))
    return calendar


def build_calendars(design: TrialDesign, guidance: dict[str, str],
                    stamp: str | None = None) -> dict[str, bytes]:
    """File name -> iCalendar bytes for every group x course with a window."""
    when = _stamp(stamp)
    return {
        calendar_name(group, course.name):
            build_calendar(design, group, course.name, guidance.get(group, ""), when).to_ical()
        for course in design.courses
        for group in course.windows
    }

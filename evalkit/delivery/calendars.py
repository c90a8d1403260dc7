"""Booking windows as iCalendar files (RFC 5545): one per group and course.

Each calendar has the window's opening and closing as all-day events, a reminder before the
window closes, and one event per configured session inside the window (with its places).
Descriptions are plain text: Outlook and Google show Markdown literally, so the guidance's
headings, bold and links are turned into plain lines first.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from typing import TYPE_CHECKING

import evalkit
from evalkit.delivery.instructions import day_text
from evalkit.trial.design import CourseSpec, SessionSpec, TrialDesign

if TYPE_CHECKING:  # icalendar (~40 ms to import) is imported only when calendars are built
    from icalendar import Alarm, Calendar, Event

UID_NAMESPACE = uuid.UUID("5d1c2b0e-4f6a-4c1e-9a57-3e2f8d9b6c41")
EVENTS = ("opens", "closes")
REMINDER_DAYS = 7  # the reminder fires this many days before the window's last day


def slug(text: str) -> str:
    """Lower-case words joined by hyphens: 'Early Adopter' -> 'early-adopter'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def calendar_name(group: str, course: str) -> str:
    """The calendar's file name: 'early-adopter_seeds2-for-managers.ics'."""
    return f"{slug(group)}_{slug(course)}.ics"


def event_uid(trial: str, group: str, course: str, event: str) -> str:
    """Stable across runs: the same trial, group, course and event give the same UID."""
    return f"{uuid.uuid5(UID_NAMESPACE, '|'.join((trial, group, course, event)))}@evalkit"


def plain_text(markdown: str) -> str:
    """The guidance's Markdown subset as plain text: no '#', '**', '_' or link syntax."""
    lines = []
    for line in markdown.splitlines():
        heading = re.match(r"^\s*#+\s*(.*)$", line)
        text = heading.group(1) if heading else line
        text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1 (\2)", text)
        text = re.sub(r"\*\*(.+?)\*\*|__(.+?)__", lambda m: m.group(1) or m.group(2), text)
        text = re.sub(r"(?<!\w)[*_](\S(?:.*?\S)?)[*_](?!\w)", r"\1", text)
        text = re.sub(r"^(\s*)[*+] ", r"\1- ", text)
        lines.append(text.replace("`", ""))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return html.unescape(text)   # names are HTML-escaped in the Markdown; plain text is literal


def _stamp(created_at: str | None) -> dt.datetime:
    if created_at:
        return dt.datetime.fromisoformat(created_at).astimezone(dt.UTC)
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _all_day(uid: str, day: dt.date, summary: str, description: str,
             stamp: dt.datetime) -> Event:
    from icalendar import Event

    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp)
    event.add("dtstart", day)
    event.add("dtend", day + dt.timedelta(days=1))
    event.add("summary", summary)
    event.add("description", description)
    event.add("transp", "TRANSPARENT")
    return event


def _reminder(course: str, group: str, end: dt.date) -> Alarm:
    from icalendar import Alarm

    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("trigger", dt.timedelta(days=-REMINDER_DAYS))
    alarm.add("description", f"{course}: the {group} booking window closes on {day_text(end)}. "
                             "Book your place now if you have not.")
    return alarm


def _window_event(design: TrialDesign, group: str, course: str, which: str, day: dt.date,
                  guidance: str, stamp: dt.datetime) -> Event:
    uid = event_uid(design.trial.name, group, course, which)
    description = (f"The {group} booking window for {course} {which} on {day_text(day)}."
                   + (f"\n\n{guidance}" if guidance else ""))
    event = _all_day(uid, day, f"{course}: booking window {which} ({group})", description,
                     stamp)
    if which == "closes":
        event.add_component(_reminder(course, group, day))
    return event


def sessions_in_window(course: CourseSpec, group: str) -> list[SessionSpec]:
    """The course's configured sessions whose date falls inside the group's window."""
    start, end = course.windows[group]
    return sorted((s for s in course.sessions if start <= s.date <= end), key=lambda s: s.date)


def _session_event(design: TrialDesign, group: str, course: str, session: SessionSpec,
                   stamp: dt.datetime) -> Event:
    where = f" ({session.region} only)" if session.region else ""
    uid = event_uid(design.trial.name, group, course,
                    f"session|{session.date.isoformat()}|{session.region or ''}")
    description = (f"A {course} session on {day_text(session.date)} with {session.places} "
                   f"places{where}. Book it on the learning platform; places are limited.")
    event = _all_day(uid, session.date, f"{course}: session, {session.places} places{where}",
                     description, stamp)
    event.add("x-evalkit-places", str(session.places))
    return event


def build_calendar(design: TrialDesign, group: str, course: str, guidance: str,
                   stamp: dt.datetime) -> Calendar:
    """One calendar: the window's opening and closing days and its sessions."""
    from icalendar import Calendar

    spec = next(c for c in design.courses if c.name == course)
    start, end = spec.windows[group]
    calendar = Calendar()
    calendar.add("prodid", f"-//evalkit//{evalkit.__version__}//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", f"{design.trial.name}: {course} ({group})")
    text = plain_text(guidance)
    for which, day in zip(EVENTS, (start, end), strict=True):
        calendar.add_component(_window_event(design, group, course, which, day, text, stamp))
    for session in sessions_in_window(spec, group):
        calendar.add_component(_session_event(design, group, course, session, stamp))
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

"""Booking windows as iCalendar files (RFC 5545): one per group and course.

Each calendar has the window's opening and closing as all-day events, a reminder before the
window closes, and one event per configured session inside the window (with its places).
Descriptions are plain text: Outlook and Google show Markdown literally, so the guidance's
headings, bold and links are turned into plain lines first. The text is written here, as
icalendar wrote it (the same bytes: tests/test_calendar_text.py), without its ~40 ms import
and its per-character folding.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid

import evalkit
from evalkit.delivery.instructions import day_text
from evalkit.trial.design import CourseSpec, SessionSpec, TrialDesign

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
             stamp: dt.datetime) -> list[str]:
    """An all-day VEVENT's opening and properties, in icalendar's order (its canonical ones,
    then the rest alphabetically); the caller adds any further ones and the END line."""
    return ["BEGIN:VEVENT", f"SUMMARY:{_text(summary)}", f"DTSTART;VALUE=DATE:{_day(day)}",
            f"DTEND;VALUE=DATE:{_day(day + dt.timedelta(days=1))}",
            f"DTSTAMP:{_day(stamp)}T{stamp.hour:02d}{stamp.minute:02d}{stamp.second:02d}Z",
            f"UID:{_text(uid)}", f"DESCRIPTION:{_text(description)}", "TRANSP:TRANSPARENT"]


def _reminder(course: str, group: str, end: dt.date) -> list[str]:
    text = (f"{course}: the {group} booking window closes on {day_text(end)}. "
            "Book your place now if you have not.")
    return ["BEGIN:VALARM", "ACTION:DISPLAY", f"DESCRIPTION:{_text(text)}",
            f"TRIGGER:-P{REMINDER_DAYS}D", "END:VALARM"]


def _window_event(design: TrialDesign, group: str, course: str, which: str, day: dt.date,
                  guidance: str, stamp: dt.datetime) -> list[str]:
    uid = event_uid(design.trial.name, group, course, which)
    description = (f"The {group} booking window for {course} {which} on {day_text(day)}."
                   + (f"\n\n{guidance}" if guidance else ""))
    event = _all_day(uid, day, f"{course}: booking window {which} ({group})", description,
                     stamp)
    if which == "closes":
        event += _reminder(course, group, day)
    return [*event, "END:VEVENT"]


def sessions_in_window(course: CourseSpec, group: str) -> list[SessionSpec]:
    """The course's configured sessions whose date falls inside the group's window."""
    start, end = course.windows[group]
    return sorted((s for s in course.sessions if start <= s.date <= end), key=lambda s: s.date)


def _session_event(design: TrialDesign, group: str, course: str, session: SessionSpec,
                   stamp: dt.datetime) -> list[str]:
    where = f" ({session.region} only)" if session.region else ""
    uid = event_uid(design.trial.name, group, course,
                    f"session|{session.date.isoformat()}|{session.region or ''}")
    description = (f"A {course} session on {day_text(session.date)} with {session.places} "
                   f"places{where}. Book it on the learning platform; places are limited.")
    event = _all_day(uid, session.date, f"{course}: session, {session.places} places{where}",
                     description, stamp)
    return [*event, f"X-EVALKIT-PLACES:{_text(str(session.places))}", "END:VEVENT"]


def build_calendar(design: TrialDesign, group: str, course: str, guidance: str,
                   stamp: dt.datetime) -> bytes:
    """One calendar: the window's opening and closing days and its sessions."""
    spec = next(c for c in design.courses if c.name == course)
    start, end = spec.windows[group]
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0",
             f"PRODID:{_text(f'-//evalkit//{evalkit.__version__}//EN')}", "CALSCALE:GREGORIAN",
             f"X-WR-CALNAME:{_text(f'{design.trial.name}: {course} ({group})')}"]
    text = plain_text(guidance)
    for which, day in zip(EVENTS, (start, end), strict=True):
        lines += _window_event(design, group, course, which, day, text, stamp)
    for session in sessions_in_window(spec, group):
        lines += _session_event(design, group, course, session, stamp)
    lines.append("END:VCALENDAR")
    return ("\r\n".join(map(_fold, lines)) + "\r\n").encode("utf-8")


def build_calendars(design: TrialDesign, guidance: dict[str, str],
                    stamp: str | None = None) -> dict[str, bytes]:
    """File name -> iCalendar bytes for every group x course with a window."""
    when = _stamp(stamp)
    return {
        calendar_name(group, course.name):
            build_calendar(design, group, course.name, guidance.get(group, ""), when)
        for course in design.courses
        for group in course.windows
    }


def _day(day: dt.date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _text(value: str) -> str:
    """A TEXT value escaped as RFC 5545 asks (the replacements, in icalendar's order)."""
    return (value.replace(r"\N", "\n").replace("\\", "\\\\").replace(";", r"\;")
            .replace(",", r"\,").replace("\r\n", r"\n").replace("\n", r"\n")
            .replace("\r", r"\n"))


FOLD_OCTETS = 75  # a content line's longest, its line break aside (RFC 5545 3.1)


def _fold(line: str) -> str:
    """A content line folded as icalendar folds it: under 75 octets a piece, and never just
    after a backslash or caret (an escape is not split), the piece then ending one earlier."""
    if line.isascii():
        if len(line) < FOLD_OCTETS:
            return line
        pieces, start = [], 0
        while len(line) - start >= FOLD_OCTETS:
            end = start + FOLD_OCTETS - 1
            if line[end - 1] in "\\^":
                end -= 1
            pieces.append(line[start:end])
            start = end
        return "\r\n ".join([*pieces, line[start:]])
    return _fold_by_octets(line)


def _fold_by_octets(line: str) -> str:
    """`_fold` for lines with characters of several UTF-8 octets, a character at a time."""
    pieces: list[str] = []
    current: list[str] = []
    octets = 0
    for char in line:
        size = len(char.encode("utf-8"))
        if current and octets + size >= FOLD_OCTETS:
            carried = current.pop() if len(current) > 1 and current[-1] in "\\^" else None
            pieces.append("".join(current))
            current = [carried] if carried else []
            octets = len(carried.encode("utf-8")) if carried else 0
        current.append(char)
        octets += size
    if current:
        pieces.append("".join(current))
    return "\r\n ".join(pieces)

"""Plain-language booking instructions: one sentence per group and course, shared by the
booking-window files, the calendars and the guidance."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from evalkit.trial.design import TrialDesign


@dataclass(frozen=True)
class GroupWindow:
    """One course's booking window for one group, with the sentence staff will read."""

    course: str
    grades: tuple[str, ...]
    start: dt.date
    end: dt.date
    instruction: str


def day_text(day: dt.date, with_year: bool = True) -> str:
    """'1 June 2022' (no leading zero), or '1 June' without the year."""
    return f"{day.day} {day:%B %Y}" if with_year else f"{day.day} {day:%B}"


def range_text(start: dt.date, end: dt.date) -> str:
    """'1 June and 30 September 2022'; the first year is shown only when the years differ."""
    return f"{day_text(start, start.year != end.year)} and {day_text(end)}"


def window_instruction(design: TrialDesign, group: str, start: dt.date, end: dt.date) -> str:
    """Control is told when not to book before; everyone else when to book."""
    if group == design.control_arm:
        return f"Please don't book before {day_text(start)}, then book by {day_text(end)}"
    return f"Book between {range_text(start, end)}"


def no_course_instruction(design: TrialDesign, in_trial: bool) -> str:
    """What staff with no course (by grade, or outside the trial) are told."""
    programme = design.delivery.programme
    if not in_trial:
        return f"Your PDU is not part of the {programme} evaluation: no booking window applies"
    return f"No {programme} course applies to your grade"


def group_windows(design: TrialDesign, group: str) -> list[GroupWindow]:
    """Every course that has a window for `group`, in design order."""
    return [
        GroupWindow(course.name, tuple(course.grades), *course.windows[group],
                    window_instruction(design, group, *course.windows[group]))
        for course in design.courses
        if group in course.windows
    ]

"""`windows`: every staff member's course and booking window, a per-PDU summary, calendars
and a capacity check, all computed before anything is written."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from evalkit.allocation.about import workbook_about
from evalkit.delivery.calendars import build_calendars
from evalkit.delivery.capacity import (
    capacity_table,
    check_session_regions,
    session_notes,
    weekly_share,
)
from evalkit.delivery.guidance_text import GuidanceTemplates, render_group_guidance
from evalkit.delivery.instructions import day_text, no_course_instruction, window_instruction
from evalkit.errors import ConfigError
from evalkit.io.files import write_csv, write_folder
from evalkit.io.xlsx import write_workbook
from evalkit.register import NOT_IN_TRIAL, Register
from evalkit.trial.design import NO_COURSE, TrialDesign

ROW_COLUMNS = ["staff_id", "name", "email", "pdu_code", "pdu_name", "region", "group", "course",
               "window_start", "window_end", "instruction"]
NO_COURSE_LABEL = "No course"
STAFF_READ = ROW_COLUMNS[:8]  # the staff_allocation columns windows reads (not grade, POD...)


@dataclass
class WindowsPlan:
    """Everything `windows` writes, computed in memory first."""

    rows: pd.DataFrame
    by_pdu: pd.DataFrame
    capacity: pd.DataFrame
    weekly: pd.DataFrame
    calendars: dict[str, bytes]
    notes: list[str] = field(default_factory=list)

    @property
    def over_capacity(self) -> pd.DataFrame:
        return self.capacity[self.capacity["over_capacity"]]

    @property
    def over_share(self) -> pd.DataFrame:
        return self.weekly[self.weekly["over_limit"]]


def check_windows_cover_staff(design: TrialDesign, staff: pd.DataFrame) -> None:
    """ConfigError when a group has staff in a course's audience but no window for it."""
    in_trial = staff[staff["group"] != NOT_IN_TRIAL]
    audiences = in_trial.groupby(["course", "group"]).size()  # one pass, sorted by group
    counted: dict[str, list[tuple[str, int]]] = {}
    for (course_name, group), count in audiences.items():
        counted.setdefault(course_name, []).append((group, count))
    for index, course in enumerate(design.courses):
        for group, count in counted.get(course.name, []):
            if group not in course.windows:
                raise ConfigError(
                    f"key 'courses[{index}].windows' ({course.name}): no window for group "
                    f"{group!r}, which has {count} staff in the course's audience "
                    f"({', '.join(course.grades)}); add e.g. "
                    f'"{group}" = ["YYYY-MM-DD", "YYYY-MM-DD"]'
                )


def booking_rows(design: TrialDesign, staff: pd.DataFrame) -> pd.DataFrame:
    """One row per staff member: course, window and the instruction they will read (worked
    out once per course and group, the only things they depend on)."""
    keys = list(zip(staff["course"], staff["group"], strict=True))
    bookings = {key: _booking(design, *key) for key in dict.fromkeys(keys)}
    planned = [bookings[key] for key in keys]
    columns = {name: staff[name].tolist() for name in ROW_COLUMNS[:7]}
    for position, name in enumerate(ROW_COLUMNS[7:]):
        columns[name] = [booking[position] for booking in planned]
    return pd.DataFrame(columns, columns=ROW_COLUMNS)


def _booking(design: TrialDesign, course: str, group: str) -> tuple[str, str, str, str]:
    """(course, window start, window end, instruction) of a person on `course` in `group`."""
    window = design.window(course, group)
    in_trial = group != NOT_IN_TRIAL
    if window is None or course == NO_COURSE or not in_trial:
        return "", "", "", no_course_instruction(design, in_trial)
    return course, window[0].isoformat(), window[1].isoformat(), \
        window_instruction(design, group, *window)


def pdu_summary(design: TrialDesign, rows: pd.DataFrame) -> pd.DataFrame:
    """Per PDU and group: staff per course and the booking window(s)."""
    labelled = rows.assign(course=rows["course"].replace("", NO_COURSE_LABEL))
    keys = ["pdu_code", "pdu_name", "region", "group"]
    counts = labelled.pivot_table(index=keys, columns="course", values="staff_id",
                                  aggfunc="count", fill_value=0)
    order = [c.name for c in design.courses] + [NO_COURSE_LABEL]
    counts = counts.reindex(columns=[c for c in order if c in counts.columns] or order,
                            fill_value=0)
    counts.columns = [f"{c} (staff)" for c in counts.columns]
    summary = counts.reset_index()
    summary["staff"] = counts.sum(axis=1).to_numpy()
    summary["window"] = [_window_text(design, g) for g in summary["group"]]
    return summary.sort_values(["region", "pdu_name", "group"], kind="stable").reset_index(
        drop=True)


def _window_text(design: TrialDesign, group: str) -> str:
    windows = {c.name: c.windows[group] for c in design.courses if group in c.windows}
    distinct = set(windows.values())
    if not distinct:
        return ""
    if len(distinct) == 1:
        start, end = distinct.pop()
        return f"{start} to {end}"
    return "; ".join(f"{course}: {start} to {end}" for course, (start, end) in windows.items())


def plan_windows(design: TrialDesign, staff: pd.DataFrame, manifest: dict,
                 templates: GuidanceTemplates) -> WindowsPlan:
    """Validate the windows against the staff table and compute every output."""
    check_windows_cover_staff(design, staff)
    check_session_regions(design, staff)
    rows = booking_rows(design, staff)
    guidance = {g: render_group_guidance(design, g, templates)
                for g in {g for c in design.courses for g in c.windows}}
    calendars = build_calendars(design, guidance, stamp=manifest.get("created_at"))
    return WindowsPlan(rows, pdu_summary(design, rows), capacity_table(design, staff),
                       weekly_share(design, staff), calendars, session_notes(design))


def run_windows(directory: Path, templates: Path | None = None) -> tuple[WindowsPlan,
                                                                         dict[str, Path]]:
    """Read the register in `directory`, plan the windows and write every file."""
    register = Register.open(directory)
    design, manifest = register.design, register.manifest
    staff = register.table("staff_allocation", STAFF_READ)
    plan = plan_windows(design, staff, manifest,
                        GuidanceTemplates.for_design(design, manifest, templates))
    about = workbook_about(register, "Every staff member's course and booking window")
    return plan, write_windows(Path(directory), plan, about)


EMPTY_SHEETS = {
    "Capacity": "No course in the design lists sessions (sessions = [...] under "
                "[[courses]]), so there are no places to check against.",
    "Weekly share": "No staff are in a course with a booking window, so there is no weekly "
                    "share to check.",
}


def write_windows(directory: Path, plan: WindowsPlan,
                  about: dict | None = None) -> dict[str, Path]:
    """Write CSV, XLSX and calendars; the calendars folder is replaced as a whole."""
    files = {
        "booking_windows": write_csv(directory / "booking_windows.csv", plan.rows),
        "by_pdu": write_csv(directory / "booking_windows_by_pdu.csv", plan.by_pdu),
        "capacity": write_csv(directory / "capacity.csv", plan.capacity),
        "weekly_share": write_csv(directory / "weekly_share.csv", plan.weekly),
        "workbook": write_workbook(directory / "booking_windows.xlsx", {
            "Booking windows": plan.rows, "By PDU": plan.by_pdu,
            "Capacity": plan.capacity, "Weekly share": plan.weekly},
            about=about or {"Contents": "Booking windows"}, empty_notes=EMPTY_SHEETS),
    }
    files["calendars"] = write_folder(directory / "calendars", plan.calendars)
    return files


def closed_window_warnings(rows: pd.DataFrame, today: dt.date | None = None) -> list[str]:
    """One warning per person whose booking window had already closed (late joiners)."""
    today = today or dt.date.today()
    ends = pd.to_datetime(rows.get("window_end", pd.Series(dtype=object)), errors="coerce")
    closed = rows[ends.notna() & (ends.dt.date < today)]
    return [f"{person.staff_id} ({person.group}) joined after their {person.course} booking "
            f"window closed on {day_text(pd.Timestamp(person.window_end).date())}: they "
            "cannot book inside it; agree a late place with L&D and record it as a deviation"
            for person in closed.itertuples(index=False)]

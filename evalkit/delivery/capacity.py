"""Course capacity: demand in each booking window against the places in its sessions, and
how many of a PDU's staff would be away on training in the same week.

Demand for a session is the course's audience in the group whose window contains the session
date. Sessions with a region serve that region; sessions without one serve every region not
served by regional sessions in the same window.

Weekly share: a PDU's staff in a group are assumed to spread evenly over the weeks of the
window that have a session open to their region (over all the window's weeks when the course
lists no sessions). The share is those away per week over all the PDU's staff in the course's
grades (every group), and is flagged above `[delivery] max_share_away_per_week`.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from evalkit.errors import ConfigError, suggestion
from evalkit.register import NOT_IN_TRIAL
from evalkit.trial.design import CourseSpec, SessionSpec, TrialDesign

ALL_REGIONS = "All regions"
OTHER_REGIONS = "Other regions"
CAPACITY_COLUMNS = ["course", "group", "window_start", "window_end", "region", "sessions",
                    "places", "demand", "shortfall", "over_capacity"]
WEEKLY_COLUMNS = ["pdu_code", "pdu_name", "region", "group", "course", "staff_in_group",
                  "staff_in_grades", "weeks", "away_per_week", "share_per_week", "limit",
                  "over_limit"]


def check_session_regions(design: TrialDesign, staff: pd.DataFrame) -> None:
    """ConfigError naming `courses[i].sessions[j].region` when a region is not in the roster."""
    regions = sorted(staff["region"].dropna().unique())
    for i, course in enumerate(design.courses):
        for j, session in enumerate(course.sessions):
            if session.region is not None and session.region not in regions:
                raise ConfigError(
                    f"key 'courses[{i}].sessions[{j}].region': unknown region "
                    f"{session.region!r}; regions in the roster: {', '.join(regions)}."
                    + suggestion(session.region, regions))


def session_notes(design: TrialDesign) -> list[str]:
    """Sessions that fall outside every booking window of their course (nobody can book)."""
    notes = []
    for course in design.courses:
        for session in course.sessions:
            if not any(s <= session.date <= e for s, e in course.windows.values()):
                notes.append(f"{course.name}: the session on {session.date} is outside every "
                             "booking window")
    return notes


def _in_window(course: CourseSpec, group: str) -> list[SessionSpec]:
    start, end = course.windows[group]
    return [s for s in course.sessions if start <= s.date <= end]


def _audience(staff: pd.DataFrame, course: CourseSpec, group: str) -> pd.DataFrame:
    return staff[(staff["course"] == course.name) & (staff["group"] == group)]


def capacity_table(design: TrialDesign, staff: pd.DataFrame) -> pd.DataFrame:
    """Demand against places per course, window (group) and region, for courses with sessions."""
    rows = []
    for course in design.courses:
        if not course.sessions:
            continue
        for group, (start, end) in course.windows.items():
            audience = _audience(staff, course, group)
            base = {"course": course.name, "group": group, "window_start": start.isoformat(),
                    "window_end": end.isoformat()}
            rows.extend(base | row for row in _region_rows(_in_window(course, group), audience))
    if not rows:
        return pd.DataFrame(columns=CAPACITY_COLUMNS).astype({"over_capacity": bool})
    frame = pd.DataFrame(rows)
    frame["shortfall"] = (frame["demand"] - frame["places"]).clip(lower=0)
    frame["over_capacity"] = frame["demand"] > frame["places"]
    return frame[CAPACITY_COLUMNS]


def _region_rows(sessions: list[SessionSpec], audience: pd.DataFrame) -> list[dict]:
    """One row per region with regional sessions, one for the rest (national sessions)."""
    if not sessions and audience.empty:
        return []
    regional = sorted({s.region for s in sessions if s.region is not None})
    rows = []
    for region in regional:
        served = [s for s in sessions if s.region == region]
        rows.append(_row(region, served, int((audience["region"] == region).sum())))
    national = [s for s in sessions if s.region is None]
    rest = int((~audience["region"].isin(regional)).sum())
    if national or rest:
        rows.append(_row(OTHER_REGIONS if regional else ALL_REGIONS, national, rest))
    return rows


def _row(region: str, sessions: list[SessionSpec], demand: int) -> dict:
    return {"region": region, "sessions": len(sessions),
            "places": sum(s.places for s in sessions), "demand": demand}


def _week(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def window_weeks(start: dt.date, end: dt.date) -> int:
    """Number of calendar weeks (Monday to Sunday) the window touches."""
    return (_week(end) - _week(start)).days // 7 + 1


def _weeks_for_region(course: CourseSpec, group: str, region: str) -> int:
    if not course.sessions:
        return window_weeks(*course.windows[group])
    sessions = _in_window(course, group)
    regional = {s.region for s in sessions if s.region is not None}
    open_to_region = [s for s in sessions
                      if s.region == region or (s.region is None and region not in regional)]
    return len({_week(s.date) for s in open_to_region})


def weekly_share(design: TrialDesign, staff: pd.DataFrame) -> pd.DataFrame:
    """Per PDU, group and course: the share of the PDU's staff in the course's grades who
    would be away on training in an average week of the window."""
    limit = design.delivery.max_share_away_per_week
    trial = staff[staff["group"] != NOT_IN_TRIAL]
    rows = []
    for course in design.courses:
        in_grades = trial[trial["course"] == course.name]
        totals = in_grades.groupby("pdu_code").size().to_dict()  # a dict: looked up per row
        groups = in_grades.groupby(["pdu_code", "pdu_name", "region", "group"]).size()
        weeks_of: dict[tuple[str, str], int] = {}  # (group, region): the same for every PDU
        for (code, name, region, group), count in groups.items():
            if group not in course.windows:
                continue
            if (group, region) not in weeks_of:
                weeks_of[group, region] = _weeks_for_region(course, group, region)
            weeks = weeks_of[group, region]
            away = count / weeks if weeks else float(count)
            share = away / totals[code]
            rows.append((code, name, region, group, course.name, int(count), int(totals[code]),
                         weeks, round(away, 2), round(share, 4), limit,
                         bool(share > limit or weeks == 0)))
    frame = pd.DataFrame.from_records(rows, columns=WEEKLY_COLUMNS)
    return frame.astype({"over_limit": bool}).sort_values(
        ["region", "pdu_name", "group", "course"], kind="stable").reset_index(drop=True)

"""Monitoring: learning-platform bookings and completions against the allocation.

For Early Adopter and Treatment staff: who completed within their window, who is late, who
has not booked. For Control staff: who booked or completed before their window opened
(contamination), with the manager to contact. Also: rows on the wrong course for the grade,
and rows matching no staff member (reported, never dropped silently).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.errors import InputError, suggestion
from evalkit.io.files import match_columns, read_table
from evalkit.register import NOT_IN_TRIAL
from evalkit.trial.design import NO_COURSE, TrialDesign

BOOKING_COLUMNS = ("staff_id", "course", "status", "date")
STATUSES = ("booked", "attended", "completed", "cancelled")
ACTIVE = ("booked", "attended", "completed")  # a cancelled booking is no booking
COMPLIANCE_TABLE = "compliance"

COMPLETED_IN_WINDOW = "completed in window"
COMPLETED_LATE = "completed late"
COMPLETED_EARLY = "completed before window"
NOT_COMPLETED_CLOSED = "not completed, window closed"
BOOKED_OPEN = "booked, window open"
NOT_BOOKED = "not booked"
EARLY_CONTACT = "booked or completed before window"
AS_PLANNED = "no early booking"


@dataclass
class Monitoring:
    """Everything the monitoring report shows, as tables."""

    staff: pd.DataFrame          # one row per monitored person, with status and flags
    late: pd.DataFrame
    not_booked: pd.DataFrame
    control_early: pd.DataFrame
    wrong_course: pd.DataFrame
    unmatched: pd.DataFrame
    summary: pd.DataFrame
    as_of: dt.date
    rows_read: int


def parse_column_map(items: list[str]) -> dict[str, str]:
    """`--map-column staff_id=Employee Number` -> {'staff_id': 'Employee Number'}."""
    mapping = {}
    for item in items:
        name, separator, source = item.partition("=")
        name, source = name.strip(), source.strip()
        if not separator or not source:
            raise InputError(f"--map-column {item!r}: expected NAME=Export column, e.g. "
                             "staff_id=Employee Number")
        if name not in BOOKING_COLUMNS:
            raise InputError(f"--map-column {item!r}: {name!r} is not one of "
                             f"{', '.join(BOOKING_COLUMNS)}.{suggestion(name, BOOKING_COLUMNS)}")
        mapping[name] = source
    return mapping


def parse_status_map(items: list[str]) -> dict[str, str]:
    """`--map-status Enrolled=booked` -> {'enrolled': 'booked'} (export values ignore case)."""
    mapping = {}
    for item in items:
        source, separator, status = item.partition("=")
        source, status = source.strip().lower(), status.strip().lower()
        if not separator or not source:
            raise InputError(f"--map-status {item!r}: expected 'Export value=status', e.g. "
                             "Enrolled=booked")
        if status not in STATUSES:
            raise InputError(f"--map-status {item!r}: {status!r} is not one of "
                             f"{', '.join(STATUSES)}.{suggestion(status, STATUSES)}")
        mapping[source] = status
    return mapping


def read_bookings(path: Path, column_map: dict[str, str] | None = None,
                  status_map: dict[str, str] | None = None) -> pd.DataFrame:
    """The export as staff_id, course, status (lower case), date and its spreadsheet row.

    Headers match ignoring case, spaces and punctuation ('Staff ID' is staff_id).
    """
    frame = read_table(path)
    column_map = column_map or {}
    source_of = {name: column_map.get(name, name) for name in BOOKING_COLUMNS}
    frame = match_columns(frame, list(source_of.values()), path)
    for name, source in source_of.items():
        if source not in frame.columns:
            hint = suggestion(source, frame.columns)
            raise InputError(f"missing column {source!r} (for {name}); found: "
                             f"{', '.join(map(str, frame.columns))}.{hint} Map another column "
                             f"with --map-column {name}=COLUMN.", file=path, row=1,
                             column=source)
    bookings = pd.DataFrame({name: frame[source] for name, source in source_of.items()})
    bookings["row"] = frame.index.to_numpy() + 2
    bookings["status"] = _statuses(bookings["status"], path, source_of["status"],
                                   status_map or {})
    bookings["date"] = _dates(bookings["date"], path, source_of["date"])
    return bookings.reset_index(drop=True)


def per_distinct(values: pd.Series, function: Callable[[str], str]) -> pd.Series:
    """`function` of each cell's text, called once per distinct text (an export repeats a few
    courses and statuses over many rows), as a text Series on the same index."""
    codes, uniques = pd.factorize(values.astype(str).to_numpy())
    results = np.empty(len(uniques), dtype=object)
    results[:] = [function(value) for value in uniques]
    return pd.Series(results[codes], index=values.index, dtype=str)


def _status_of(value: str, status_map: dict[str, str]) -> str:
    lowered = value.strip().lower()
    return status_map.get(lowered, lowered)


def _statuses(values: pd.Series, path: Path, column: str,
              status_map: dict[str, str]) -> pd.Series:
    lowered = per_distinct(values, lambda value: _status_of(value, status_map))
    bad = ~lowered.isin(STATUSES)
    if bad.any():
        position = int(bad.to_numpy().argmax())
        value = values.iloc[position]
        raise InputError(f"unknown status {value!r}; expected one of {', '.join(STATUSES)}."
                         + suggestion(value, STATUSES)
                         + f" To count it as one of them: --map-status '{value}=booked'",
                         file=path, row=int(values.index[position]) + 2, column=column)
    return lowered


_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ].*)?")
_UK_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})(?: \d{1,2}:\d{2}(?::\d{2})?)?")


def parse_export_date(text: str) -> dt.date | None:
    """The calendar date of an ISO date or date-time (any time zone, as written) or UK
    DD/MM/YYYY (optionally with a time); None if it is neither."""
    text = text.strip()
    iso, uk = _ISO_DATE.fullmatch(text), _UK_DATE.fullmatch(text)
    if iso:
        year, month, day = (int(part) for part in iso.groups())
    elif uk:
        day, month, year = (int(part) for part in uk.groups())
    else:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _dates(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Each cell parsed on its own, so ISO and UK dates may mix; anything else is an error."""
    codes, uniques = pd.factorize(values.astype(str).to_numpy())
    parsed = pd.to_datetime(pd.Series([parse_export_date(value) for value in uniques],
                                      dtype=object))
    bad = parsed.isna().to_numpy()[codes]
    if bad.any():
        position = int(bad.argmax())
        value = str(values.iloc[position]).strip()
        hint = ""
        uk = _UK_DATE.fullmatch(value)
        if uk and int(uk.group(2)) > 12:
            hint = " (it looks like month/day/year: export UK or ISO dates)"
        raise InputError(f"bad date {value!r}; expected YYYY-MM-DD (or DD/MM/YYYY){hint}",
                         file=path, row=int(values.index[position]) + 2, column=column)
    return pd.Series(parsed.to_numpy()[codes], index=values.index, name=values.name)


def _normalise_course(names: pd.Series) -> pd.Series:
    """Course names compared ignoring case, spaces and punctuation (once per distinct name)."""
    return per_distinct(names, lambda name: _NOT_ALPHANUMERIC.sub(" ", name.lower()).strip())


_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


def _with_windows(design: TrialDesign, staff: pd.DataFrame) -> pd.DataFrame:
    """Each person's booking window, looked up once per course and group (not per person)."""
    windows = {(c.name, g): w for c in design.courses for g, w in c.windows.items()}
    starts = np.full(len(staff), None, dtype=object)
    ends = starts.copy()
    for key, rows in staff.groupby(["course", "group"], sort=False).indices.items():
        starts[rows], ends[rows] = windows.get(key, (None, None))
    return staff.assign(window_start=pd.to_datetime(pd.Series(starts, index=staff.index)),
                        window_end=pd.to_datetime(pd.Series(ends, index=staff.index)))


def _contacts(staff: pd.DataFrame) -> pd.DataFrame:
    """Manager to contact per person: the line manager, else the Head of their PDU."""
    people = staff.set_index("staff_id")[["name", "email"]]
    heads = staff[staff["grade"] == "Head of PDU"].drop_duplicates("pdu_code")
    head_of = heads.set_index("pdu_code")["staff_id"]
    manager = staff["line_manager_id"].where(staff["line_manager_id"].isin(people.index))
    manager = manager.astype(object).fillna(staff["pdu_code"].map(head_of).astype(object))
    return pd.DataFrame({"staff_id": staff["staff_id"].to_numpy(),
                         "manager_id": manager.fillna("").to_numpy(),
                         "manager_name": manager.map(people["name"]).fillna("").to_numpy(),
                         "manager_email": manager.map(people["email"]).fillna("").to_numpy()})


def _per_person(bookings: pd.DataFrame, monitored: pd.DataFrame,
                person: np.ndarray) -> pd.DataFrame:
    """First active date, first completion and completion-in-window, one row per monitored
    person (on `monitored`'s index; NaT and False for someone with no such booking).
    `person`: each booking's row in `monitored`, -1 for someone not monitored."""
    active = bookings["status"].isin(ACTIVE).to_numpy() & (person >= 0)
    right = active & bookings["right_course"].to_numpy()
    done = right & (bookings["status"] == "completed").to_numpy()
    dates = bookings["date"].to_numpy()
    start = monitored["window_start"].to_numpy()
    end = monitored["window_end"].to_numpy()
    in_window = np.zeros(len(monitored), dtype=bool)
    done_person = person[done]
    inside = (dates[done] >= start[done_person]) & (dates[done] <= end[done_person])
    in_window[done_person[inside]] = True

    def first(rows: np.ndarray, how: str = "min") -> np.ndarray:
        per = pd.Series(dates[rows]).groupby(person[rows]).agg(how)
        return per.reindex(np.arange(len(monitored))).to_numpy()

    return pd.DataFrame({
        "first_booked": first(right), "first_completed": first(done),
        "last_completed": first(done, "max"), "first_any_course": first(active),
        "completed_in_window": in_window,
    }, index=monitored.index)


def _status(frame: pd.DataFrame, control: str, as_of: pd.Timestamp) -> pd.Series:
    completed = frame["first_completed"].notna()
    closed = frame["window_end"] < as_of
    booked = frame["first_booked"].notna()
    conditions = [
        frame["completed_in_window"],
        completed & (frame["last_completed"] > frame["window_end"]),
        completed,
        booked & closed,
        booked,
    ]
    choices = [COMPLETED_IN_WINDOW, COMPLETED_LATE, COMPLETED_EARLY, NOT_COMPLETED_CLOSED,
               BOOKED_OPEN]
    status = pd.Series(np.select(conditions, choices, NOT_BOOKED), index=frame.index)
    early = frame["first_any_course"] < frame["window_start"]
    control_status = np.where(early, EARLY_CONTACT, AS_PLANNED)
    return status.where(frame["group"] != control, control_status)


def monitor_bookings(design: TrialDesign, staff: pd.DataFrame, bookings: pd.DataFrame,
                     as_of: dt.date | None = None) -> Monitoring:
    """Compare an export with each person's group, course and window."""
    as_of = as_of or dt.date.today()
    staff = staff.fillna("")
    person = pd.Index(staff["staff_id"]).get_indexer(bookings["staff_id"])  # -1: nobody
    known = person >= 0
    unmatched = bookings.loc[~known, ["row", "staff_id", "course", "status", "date"]]
    matched = bookings[known].copy()
    person = person[known]
    courses = staff["course"]
    expected = pd.Series(courses.to_numpy()[person], index=matched.index, dtype=courses.dtype)
    matched["right_course"] = (_normalise_course(matched["course"]).to_numpy()
                               == _normalise_course(courses).to_numpy()[person])
    in_trial = ((staff["group"] != NOT_IN_TRIAL) & (staff["course"] != NO_COURSE)).to_numpy()
    monitored = _with_windows(design, staff[in_trial])
    monitored_row = np.full(len(staff), -1)  # each staff row's row in `monitored`
    monitored_row[in_trial] = np.arange(len(monitored))
    people = pd.concat([monitored, _per_person(matched, monitored, monitored_row[person])],
                       axis=1)
    people["status"] = _status(people, design.control_arm, pd.Timestamp(as_of))
    people = people.merge(_contacts(staff), on="staff_id", how="left")
    wrong = matched[~matched["right_course"]].assign(expected_course=expected)
    return _assemble(design, people, wrong, unmatched, staff, as_of, len(bookings))


def _assemble(design: TrialDesign, people: pd.DataFrame, wrong: pd.DataFrame,
              unmatched: pd.DataFrame, staff: pd.DataFrame, as_of: dt.date,
              rows_read: int) -> Monitoring:
    control = design.control_arm
    treated = people["group"] != control
    late = people[treated & people["status"].isin([COMPLETED_LATE, NOT_COMPLETED_CLOSED])]
    not_booked = people[treated & (people["status"] == NOT_BOOKED)]
    early = people[(people["group"] == control) & (people["status"] == EARLY_CONTACT)]
    early = early.sort_values(["pdu_code", "staff_id"], kind="stable")
    wrong = wrong.merge(staff[["staff_id", "name", "grade", "pdu_code", "group"]], on="staff_id")
    wrong = wrong[["row", "staff_id", "name", "grade", "pdu_code", "group", "course",
                   "expected_course", "status", "date"]].rename(columns={"course": "booked_course"})
    return Monitoring(people, late, not_booked, early, wrong, unmatched,
                      summarise(people, [a.name for a in design.arms]), as_of, rows_read)


def summarise(people: pd.DataFrame, groups: list[str]) -> pd.DataFrame:
    """Counts per group and status (groups in design order)."""
    table = people.groupby(["group", "status"]).size().unstack(fill_value=0)
    table = table.reindex([g for g in groups if g in table.index])
    table.insert(0, "staff", table.sum(axis=1))
    return table.reset_index()


def compliance_table(monitoring: Monitoring) -> pd.DataFrame:
    """Per-person compliance for the complier (CACE) analysis."""
    people = monitoring.staff
    early = people["first_completed"] < people["window_start"]
    return pd.DataFrame({
        "staff_id": people["staff_id"], "pdu_code": people["pdu_code"],
        "group": people["group"], "course": people["course"],
        "window_start": _iso(people["window_start"]), "window_end": _iso(people["window_end"]),
        "first_booked": _iso(people["first_booked"]),
        "first_completed": _iso(people["first_completed"]),
        "completed_in_window": people["completed_in_window"].astype(int),
        "completed_before_window": early.astype(int),
        "status": people["status"], "as_of": monitoring.as_of.isoformat(),
    }).reset_index(drop=True)


def _iso(values: pd.Series) -> pd.Series:
    return values.dt.strftime("%Y-%m-%d").fillna("")

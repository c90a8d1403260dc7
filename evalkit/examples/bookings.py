"""A synthetic learning-platform export matching a run, for trying out `monitor`.

Deterministic for a seed (numpy PCG64, basic methods only). Most Early Adopter and
Treatment staff book and complete in their window; some never complete, some complete late,
some never book. A few Control staff book or complete before their window; most book in it.
A few rows are on the wrong course for the grade, and a few carry unknown staff IDs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.io.files import write_csv
from evalkit.register import NOT_IN_TRIAL, Register
from evalkit.trial.design import NO_COURSE, TrialDesign

SHARE_BOOKING = 0.88           # of Early Adopter / Treatment staff
SHARE_COMPLETING = 0.85        # of those booking: complete in window
SHARE_LATE = 0.06              # of those booking: complete after the window
SHARE_CANCELLING = 0.04        # of those booking: cancel
SHARE_CONTROL_EARLY = 0.04     # of Control staff: book (some complete) before their window
SHARE_CONTROL_IN_WINDOW = 0.7  # of Control staff: book in their window
WRONG_COURSE_ROWS = 12
UNKNOWN_STAFF_ROWS = 8


def _day_in(rng: np.random.Generator, start: pd.Series, end: pd.Series) -> pd.Series:
    span = (end - start).dt.days.to_numpy()
    offsets = np.floor(rng.random(len(span)) * (span + 1)).astype(int)
    return start + pd.to_timedelta(offsets, unit="D")


def _rows(people: pd.DataFrame, status: str, dates: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"staff_id": people["staff_id"].to_numpy(),
                         "course": people["course"].to_numpy(), "status": status,
                         "date": dates.to_numpy()})


def _windows(design: TrialDesign, people: pd.DataFrame) -> pd.DataFrame:
    windows = {(c.name, g): w for c in design.courses for g, w in c.windows.items()}
    pairs = [windows.get((c, g)) for c, g in zip(people["course"], people["group"], strict=True)]
    keep = np.array([p is not None for p in pairs], dtype=bool)
    people = people[keep].copy()
    people["start"] = pd.to_datetime([p[0] for p in pairs if p is not None])
    people["end"] = pd.to_datetime([p[1] for p in pairs if p is not None])
    return people


def _treated_rows(rng: np.random.Generator, people: pd.DataFrame) -> list[pd.DataFrame]:
    draw = rng.random(len(people))
    books = draw < SHARE_BOOKING
    outcome = rng.random(len(people))
    booked = people[books]
    booking_date = _day_in(rng, booked["start"] - pd.Timedelta(days=21), booked["start"]
                           + (booked["end"] - booked["start"]) / 2)
    rows = [_rows(booked, "booked", booking_date)]
    outcome = outcome[books]
    completes = booked[outcome < SHARE_COMPLETING]
    rows.append(_rows(completes, "attended", _day_in(rng, completes["start"], completes["end"])))
    rows.append(_rows(completes, "completed", _day_in(rng, completes["start"], completes["end"])))
    late = booked[(outcome >= SHARE_COMPLETING) & (outcome < SHARE_COMPLETING + SHARE_LATE)]
    rows.append(_rows(late, "completed", _day_in(rng, late["end"] + pd.Timedelta(days=1),
                                                 late["end"] + pd.Timedelta(days=90))))
    cancel_from = SHARE_COMPLETING + SHARE_LATE
    cancels = booked[(outcome >= cancel_from) & (outcome < cancel_from + SHARE_CANCELLING)]
    rows.append(_rows(cancels, "cancelled", _day_in(rng, cancels["start"], cancels["end"])))
    return rows


def _control_rows(rng: np.random.Generator, people: pd.DataFrame) -> list[pd.DataFrame]:
    draw = rng.random(len(people))
    early = people[draw < SHARE_CONTROL_EARLY]
    early_dates = _day_in(rng, early["start"] - pd.Timedelta(days=300),
                          early["start"] - pd.Timedelta(days=1))
    completes_early = early[rng.random(len(early)) < 0.5]
    in_window = people[(draw >= SHARE_CONTROL_EARLY)
                       & (draw < SHARE_CONTROL_EARLY + SHARE_CONTROL_IN_WINDOW)]
    return [_rows(early, "booked", early_dates),
            _rows(completes_early, "completed",
                  _day_in(rng, completes_early["start"] - pd.Timedelta(days=200),
                          completes_early["start"] - pd.Timedelta(days=1))),
            _rows(in_window, "booked", _day_in(rng, in_window["start"], in_window["end"]))]


def _odd_rows(rng: np.random.Generator, design: TrialDesign, people: pd.DataFrame) -> pd.DataFrame:
    courses = [c.name for c in design.courses]
    picked = people.iloc[np.floor(rng.random(WRONG_COURSE_ROWS) * len(people)).astype(int)]
    wrong = [courses[(courses.index(c) + 1) % len(courses)] if c in courses else courses[0]
             for c in picked["course"]]
    wrong_rows = pd.DataFrame({"staff_id": picked["staff_id"].to_numpy(), "course": wrong,
                               "status": "booked", "date": picked["start"].to_numpy()})
    numbers = np.floor(rng.random(UNKNOWN_STAFF_ROWS) * 900_000).astype(int) + 9_000_000
    unknown = pd.DataFrame({"staff_id": [f"X{n}" for n in numbers],
                            "course": courses[0], "status": "booked",
                            "date": people["start"].iloc[0]})
    return pd.concat([wrong_rows, unknown], ignore_index=True)


def make_example_bookings(design: TrialDesign, staff: pd.DataFrame, seed: int = 2022
                          ) -> pd.DataFrame:
    """The synthetic export (staff_id, course, status, date) for a run's staff table."""
    rng = np.random.Generator(np.random.PCG64(seed))
    people = staff[(staff["group"] != NOT_IN_TRIAL) & (staff["course"] != NO_COURSE)]
    people = _windows(design, people.sort_values("staff_id", kind="stable"))
    control = people["group"] == design.control_arm
    parts = _treated_rows(rng, people[~control]) + _control_rows(rng, people[control])
    parts.append(_odd_rows(rng, design, people))
    export = pd.concat(parts, ignore_index=True)
    export["date"] = pd.to_datetime(export["date"]).dt.strftime("%Y-%m-%d")
    return export.sort_values(["date", "staff_id", "status"], kind="stable").reset_index(drop=True)


def write_example_bookings(run_directory: Path, target: Path, seed: int = 2022) -> Path:
    """Write the synthetic export for the run in `run_directory` to `target` (CSV)."""
    register = Register.open(run_directory)
    export = make_example_bookings(register.design, register.table("staff_allocation"), seed)
    return write_csv(target, export)

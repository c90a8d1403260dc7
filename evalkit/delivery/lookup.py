"""`lookup`: a staff ID, email, PDU code or PDU name -> group, course and booking window."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evalkit.errors import CheckFailed, suggestion
from evalkit.register import Register
from evalkit.trial.design import TrialDesign


@dataclass
class LookupResult:
    title: str
    rows: pd.DataFrame


def _staff_rows(design: TrialDesign, staff: pd.DataFrame) -> pd.DataFrame:
    rows = staff[["staff_id", "name", "pdu_code", "pdu_name", "region", "group", "course"]].copy()
    windows = [design.window_iso(c, g) for c, g in zip(rows["course"], rows["group"],
                                                          strict=True)]
    rows["window_start"] = [w[0] for w in windows]
    rows["window_end"] = [w[1] for w in windows]
    return rows


def _pdu_rows(design: TrialDesign, staff: pd.DataFrame, pdu_code: str) -> pd.DataFrame:
    members = staff[staff["pdu_code"] == pdu_code]
    first = members.iloc[0]
    rows = []
    for course in design.courses:
        groups = members.loc[members["course"] == course.name, "group"].unique().tolist() \
            or [first["group"]]
        for group in groups:
            start, end = design.window_iso(course.name, group)
            audience = int(((members["course"] == course.name) & (members["group"] == group)).sum())
            rows.append({"pdu_code": pdu_code, "pdu_name": first["pdu_name"],
                         "region": first["region"], "group": group, "course": course.name,
                         "staff": audience, "window_start": start, "window_end": end})
    return pd.DataFrame(rows)


def lookup(directory: Path, query: str) -> LookupResult:
    """Find a staff member (ID or email) or a PDU (code or name); CheckFailed if none."""
    register = Register.open(directory)
    design = register.design
    staff = register.table("staff_allocation")
    text = query.strip().lower()
    person = staff[(staff["staff_id"].str.lower() == text) | (staff["email"].str.lower() == text)]
    if len(person):
        return LookupResult(f"Staff member {person.iloc[0]['staff_id']}",
                            _staff_rows(design, person))
    pdus = staff[["pdu_code", "pdu_name"]].drop_duplicates()
    match = pdus[(pdus["pdu_code"].str.lower() == text) | (pdus["pdu_name"].str.lower() == text)]
    if len(match):
        code = match.iloc[0]["pdu_code"]
        title = f"PDU {code} {match.iloc[0]['pdu_name']}"
        return LookupResult(title, _pdu_rows(design, staff, code))
    hint = suggestion(query, list(pdus["pdu_name"]) + list(pdus["pdu_code"]))
    people = ""
    if "@" not in query and " " in query.strip():
        people = " People's names are not searched: look a person up by staff ID or email."
    raise CheckFailed(f"no staff member or PDU matches {query!r}.{hint}{people} Search by "
                      "staff ID, email, PDU code or PDU name.")

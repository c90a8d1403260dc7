"""Read and validate the PDU and staff rosters, and turn them into the units to allocate.

Row numbers in messages are spreadsheet rows: the header is row 1, the first record row 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evalkit.errors import InputError, suggestion
from evalkit.io.files import read_table
from evalkit.trial.design import GRADES, TrialDesign

PDU_COLUMNS = ("pdu_code", "pdu_name", "region")
STAFF_COLUMNS = ("staff_id", "grade", "pdu_code")
STAFF_OPTIONAL = ("name", "email", "pod", "line_manager_id", "office", "start_date")
# nDelius grade codes seen in public code, and common spellings, mapped to evalkit's grades.
GRADE_ALIASES = {
    "PSQ": "PSO", "PSP": "PQiP", "TPO": "PQiP", "PSM": "PO", "PSC": "SPO",
    "PQIP": "PQiP", "HEAD OF PDU": "Head of PDU", "BAND 6+": "Band 6+", "BAND 6": "Band 6+",
    "BAND 7": "Band 6+", "CASE ADMINISTRATOR": "CA",
}


@dataclass(frozen=True)
class Roster:
    """Validated rosters: PDUs (one row each) and staff (may be empty for PDU-only designs)."""

    pdus: pd.DataFrame
    staff: pd.DataFrame
    pdus_path: Path | None = None
    staff_path: Path | None = None


def _sheet_row(position: int) -> int:
    return position + 2


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...] | list[str], path: Path) -> None:
    """Fail naming the first missing column and the nearest present one."""
    for column in columns:
        if column not in frame.columns:
            raise InputError(
                f"missing required column {column!r}; found: {', '.join(frame.columns)}."
                + suggestion(column, frame.columns),
                file=path, row=1, column=column,
            )


def require_no_blanks(frame: pd.DataFrame, column: str, path: Path, what: str = "ID") -> None:
    """Fail on the first blank cell in a required column."""
    blank = frame[column].astype(str).str.strip() == ""
    if blank.any():
        position = int(blank.to_numpy().argmax())
        raise InputError(f"blank {what}; every row needs one", file=path,
                         row=_sheet_row(position), column=column)


def require_unique(frame: pd.DataFrame, column: str, path: Path) -> None:
    """Fail on the first repeated value, naming both rows."""
    repeated = frame[column].duplicated(keep=False)
    if repeated.any():
        value = frame.loc[repeated.idxmax(), column]
        rows = [_sheet_row(i) for i in (frame.index[frame[column] == value]).tolist()]
        raise InputError(f"duplicate ID {value!r} (rows {', '.join(map(str, rows))})",
                         file=path, row=rows[1], column=column)


def validate_pdus(frame: pd.DataFrame, path: Path, extra_columns: list[str] = ()) -> pd.DataFrame:
    """Check the PDU table: required columns, IDs present and unique, one region per PDU."""
    frame = frame.reset_index(drop=True)
    require_columns(frame, [*PDU_COLUMNS, *extra_columns], path)
    require_no_blanks(frame, "pdu_code", path, "PDU code")
    require_no_blanks(frame, "region", path, "region")
    regions = frame.groupby("pdu_code")["region"].nunique()
    if (regions > 1).any():
        code = regions[regions > 1].index[0]
        rows = frame.index[frame["pdu_code"] == code].tolist()
        listed = sorted(frame.loc[rows, "region"].unique())
        raise InputError(f"PDU {code!r} is listed in two regions ({' and '.join(listed)})",
                         file=path, row=_sheet_row(rows[1]), column="region")
    require_unique(frame, "pdu_code", path)
    return _numeric_where_possible(frame)


def normalise_grade(value: str) -> str | None:
    """The evalkit grade for a roster value (case-insensitive; nDelius codes accepted)."""
    if value in GRADES:
        return value
    lookup = {g.upper(): g for g in GRADES} | GRADE_ALIASES
    return lookup.get(value.strip().upper())


def validate_staff(frame: pd.DataFrame, path: Path, pdus: pd.DataFrame) -> pd.DataFrame:
    """Check the staff table: IDs, grades, and that every PDU code is a known PDU."""
    frame = frame.reset_index(drop=True)
    require_columns(frame, STAFF_COLUMNS, path)
    require_no_blanks(frame, "staff_id", path, "staff ID")
    require_unique(frame, "staff_id", path)
    grades = frame["grade"].map(normalise_grade)
    if grades.isna().any():
        position = int(grades.isna().to_numpy().argmax())
        value = frame.loc[position, "grade"]
        raise InputError(f"unknown grade {value!r}; allowed: {', '.join(GRADES)}."
                         + suggestion(value, GRADES),
                         file=path, row=_sheet_row(position), column="grade")
    known = set(pdus["pdu_code"])
    unknown = ~frame["pdu_code"].isin(known)
    if unknown.any():
        position = int(unknown.to_numpy().argmax())
        value = frame.loc[position, "pdu_code"]
        raise InputError(f"unknown PDU {value!r}: not in the PDU list."
                         + suggestion(value, list(known) + list(pdus["pdu_name"])),
                         file=path, row=_sheet_row(position), column="pdu_code")
    frame = frame.assign(grade=grades)
    for column in STAFF_OPTIONAL:
        if column not in frame.columns:
            frame[column] = ""
    return frame


def _numeric_where_possible(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn text columns that are wholly numeric into numbers (covariates)."""
    out = frame.copy()
    for column in out.columns:
        if column in PDU_COLUMNS:
            continue
        converted = pd.to_numeric(out[column], errors="coerce")
        if converted.notna().all() and len(out):
            out[column] = converted
    return out


def load_roster(design: TrialDesign, pdus_path: Path | None, staff_path: Path | None) -> Roster:
    """Read both rosters from disk and validate them against the design."""
    if pdus_path is None:
        raise InputError("no PDU roster given: set [inputs] pdus in the design or pass --pdus")
    for path in (pdus_path, staff_path):
        if path is not None and not Path(path).exists():
            raise InputError(
                "file not found (inputs come from [inputs] in the design, relative to it, or "
                f"from --pdus/--staff; to create the shipped example: evalkit example "
                f"{Path(path).parent})", file=path)
    pdu_strata = design.trial.strata if design.trial.unit == "pdu" else []
    pdus = validate_pdus(read_table(pdus_path), Path(pdus_path), pdu_strata)
    staff = pd.DataFrame(columns=[*STAFF_COLUMNS, *STAFF_OPTIONAL])
    if staff_path is not None:
        staff = validate_staff(read_table(staff_path), Path(staff_path), pdus)
    elif design.trial.unit == "staff":
        raise InputError("a staff-level design needs a staff roster: set [inputs] staff or --staff")
    return Roster(pdus=pdus, staff=staff, pdus_path=pdus_path, staff_path=staff_path)

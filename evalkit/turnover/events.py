"""Staff turnover after the allocation is sealed: new starters (`enrol`) and `transfer`s.

New starters inherit their PDU's group (PDU-level design) or take the next unused slot of
their stratum's concealed sequence (staff-level design). A transfer keeps the person's original
group (intention to treat) and is flagged for the contamination report. The sealed
`allocation` table is never touched: joiners live in `joiners`, and `staff_allocation` plus
every derived file are regenerated. Every change is an event; all input is validated first.
Each command holds the run folder's lock and commits its register changes in one
transaction; the files are rebuilt from the register after the commit (a kill in between
is healed by the next command or `evalkit refresh`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from evalkit.allocation import roster
from evalkit.allocation.allocate import stratum_keys
from evalkit.allocation.exports import export_allocation
from evalkit.allocation.joiner_sequence import (
    KEY_META,
    SEQUENCE_TABLE,
    check_key,
    commit,
    extended_sequence,
    missing_key,
    reveal,
)
from evalkit.allocation.keys import read_key
from evalkit.allocation.roster import identity_key, validate_staff
from evalkit.delivery.guidance import run_guidance
from evalkit.delivery.publish import publish
from evalkit.delivery.windows import run_windows
from evalkit.errors import InputError, suggestion
from evalkit.io.files import read_table
from evalkit.io.runfolder import kill_point, relative_to_folder
from evalkit.register import (
    NOT_IN_TRIAL,
    PDU_SPECIFIC,
    STAFF_COLUMNS,
    Register,
    now_utc,
    writing,
)

JOINERS_TABLE = "joiners"


@dataclass
class TurnoverResult:
    """What changed: one row per person, and the files regenerated."""

    rows: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)


def known_pdus(register: Register, staff: pd.DataFrame) -> pd.DataFrame:
    """Every PDU the run knows: code, name, region and the PDU's own attributes (strata)."""
    units = register.table("units")
    if register.design.trial.unit == "pdu":
        pdus = units.rename(columns={"unit_id": "pdu_code", "name": "pdu_name"})
    else:
        personal = {"unit_id", "tenure_years", *roster.STAFF_COLUMNS, *roster.STAFF_OPTIONAL}
        own = [c for c in units.columns if c not in personal]
        pdus = units[["pdu_code", *own]].drop_duplicates("pdu_code")
        pdus = pdus.merge(staff[["pdu_code", "pdu_name"]].drop_duplicates("pdu_code"),
                          on="pdu_code", how="left")
    listed = staff[["pdu_code", "pdu_name", "region"]].drop_duplicates("pdu_code")
    missing = listed[~listed["pdu_code"].isin(pdus["pdu_code"])]
    pdus = pd.concat([pdus, missing], ignore_index=True)
    return pdus.fillna({c: "" for c in ("pdu_code", "pdu_name", "region")})


def _pdu_error(code: str, pdus: pd.DataFrame, **where) -> InputError:
    hint = suggestion(code, list(pdus["pdu_code"]) + list(pdus["pdu_name"]))
    return InputError(f"unknown PDU {code!r}: not in the run's PDU list.{hint}", **where)


def _read_new_starters(path: Path, staff: pd.DataFrame, pdus: pd.DataFrame) -> pd.DataFrame:
    """The new-starter file validated: columns, IDs unique, grades, PDUs, nobody enrolled."""
    frame = read_table(path)
    if "pdu_code" in frame.columns:  # codes in any case, or PDU names, are accepted
        by_text = {str(t).lower(): c for c, n in zip(pdus["pdu_code"], pdus["pdu_name"],
                                                     strict=True) for t in (c, n)}
        frame["pdu_code"] = [by_text.get(v.lower(), v) for v in frame["pdu_code"]]
    frame = validate_staff(frame, Path(path), pdus)
    already = frame["staff_id"].map(identity_key).isin(set(staff["staff_id"].map(identity_key)))
    if already.any():
        position = int(already.to_numpy().argmax())
        raise InputError(f"staff ID {frame.loc[position, 'staff_id']!r} is already enrolled "
                         "in this run (use `evalkit transfer` to move them)",
                         file=path, row=position + 2, column="staff_id")
    if frame.empty:
        raise InputError("no new starters in the file", file=path)
    return frame


def _new_staff_rows(register: Register, frame: pd.DataFrame, pdus: pd.DataFrame) -> pd.DataFrame:
    """staff_allocation rows for new starters; group filled in later for staff-level designs."""
    design = register.design
    rows = frame.merge(pdus[["pdu_code", "pdu_name", "region"]], on="pdu_code", how="left")
    courses = {g: design.course_name_for_grade(g) for g in rows["grade"].unique()}
    rows["course"] = rows["grade"].map(courses)
    if design.trial.unit == "pdu":
        groups = register.table("allocation").set_index("unit_id")["group"]
        rows["group"] = rows["pdu_code"].map(groups).fillna(NOT_IN_TRIAL)
    else:
        rows["group"] = ""
    rows = rows.sort_values("staff_id", kind="stable").reset_index(drop=True)
    return rows[STAFF_COLUMNS].fillna("").astype(str)


def _joiner_strata(register: Register, rows: pd.DataFrame, frame: pd.DataFrame,
                   pdus: pd.DataFrame, path: Path) -> pd.Series:
    """Each new starter's stratum key, computed the way the allocation computed it."""
    design = register.design
    extra = frame.drop(columns=[c for c in STAFF_COLUMNS if c in frame.columns and
                                c not in ("staff_id",)], errors="ignore")
    units = rows.merge(pdus.drop(columns=["pdu_name", "region"]), on="pdu_code", how="left")
    units = units.merge(extra, on="staff_id", how="left", suffixes=("", "_file"))
    units = units.rename(columns={"staff_id": "unit_id"})
    keys = stratum_keys(units, design.trial.strata)
    allocation = register.table("allocation")
    known = set(stratum_keys(allocation, design.trial.strata))
    unknown = ~keys.isin(known)
    if unknown.any():
        staff_id = rows.loc[unknown.idxmax(), "staff_id"]
        raise InputError(f"new starter {staff_id!r} falls in stratum {keys[unknown.idxmax()]!r}, "
                         "which the allocation does not have." + suggestion(keys[unknown.idxmax()],
                                                                            known), file=path)
    return keys


def _take_slots(register: Register, rows: pd.DataFrame, strata: pd.Series,
                when: str, key: bytes) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give each joiner (in staff ID order) the next unused slot of their stratum."""
    design = register.design
    allocation = register.table("allocation")
    sequence = reveal(design, allocation, register.table(SEQUENCE_TABLE).fillna(""), key)
    rows = rows.assign(stratum=strata.to_numpy(), slot=0)
    for index, row in rows.iterrows():
        free = sequence[(sequence["stratum"] == row["stratum"]) & (sequence["used_by"] == "")]
        while free.empty:
            sequence = extended_sequence(design, allocation, sequence, key)
            free = sequence[(sequence["stratum"] == row["stratum"]) & (sequence["used_by"] == "")]
        slot = free.index[free["slot"].astype(int).argmin()]
        sequence.loc[slot, ["used_by", "used_at"]] = [row["staff_id"], when]
        rows.loc[index, ["group", "slot"]] = [sequence.loc[slot, "group"],
                                              int(sequence.loc[slot, "slot"])]
    return rows, commit(sequence, key)


def enrol(directory: Path, staff_path: Path, reason: str = "",
          key_file: Path | None = None) -> TurnoverResult:
    """Add new starters to a sealed run; validate everything before writing anything.

    Staff-level designs need `key_file`, the joiner key `assign` created. Holds the run
    folder's lock; the register changes commit in one transaction.
    """
    Register.open(directory)  # a clear "no register" before taking the lock
    with writing(directory, "enrol"):
        return _enrol(directory, staff_path, reason, key_file)


def _enrol(directory: Path, staff_path: Path, reason: str,
           key_file: Path | None) -> TurnoverResult:
    register = Register.open(directory)
    design = register.design
    key = None
    if design.trial.unit == "staff":
        if key_file is None:
            raise missing_key("enrol")
        key = read_key(key_file)
        check_key(register.meta(KEY_META), key, key_file)
    staff = register.table("staff_allocation").fillna("")
    pdus = known_pdus(register, staff)
    frame = _read_new_starters(staff_path, staff, pdus)
    rows = _new_staff_rows(register, frame, pdus)
    when = now_utc()
    sequence = None
    if design.trial.unit == "staff":
        strata = _joiner_strata(register, rows, frame, pdus, Path(staff_path))
        rows, sequence = _take_slots(register, rows, strata, when, key)
    else:
        rows = rows.assign(stratum="", slot=0)
    joiners = rows.assign(assignment="joiner", enrolled_at=when, reason=reason)
    with register.transaction():  # all of it commits, or none of it
        if sequence is not None:
            register.replace_table(SEQUENCE_TABLE, sequence)
        previous = register.table(JOINERS_TABLE) if register.has_table(JOINERS_TABLE) else None
        register.replace_table(JOINERS_TABLE, pd.concat([previous, joiners], ignore_index=True))
        kill_point("enrol:tables")
        register.replace_table("staff_allocation",
                               _sorted(pd.concat([staff, rows[STAFF_COLUMNS]])))
        for row in joiners.to_dict("records"):
            detail = {c: row[c] for c in STAFF_COLUMNS} | {"stratum": row["stratum"],
                                                           "slot": int(row["slot"])}
            register.append_event("enrolled", reason, detail)
        kill_point("enrol:before-commit")
    kill_point("enrol:committed")
    return TurnoverResult(_with_windows(design, rows), regenerate_outputs(register, directory))


def transfer(directory: Path, staff_id: str, to_pdu: str, reason: str = "") -> TurnoverResult:
    """Move a person to another PDU, keeping their original group (intention to treat).

    Holds the run folder's lock, so parallel transfers apply one after the other.
    """
    Register.open(directory)
    with writing(directory, "transfer"):
        return _transfer(directory, staff_id, to_pdu, reason)


def _transfer(directory: Path, staff_id: str, to_pdu: str, reason: str) -> TurnoverResult:
    register = Register.open(directory)
    staff = register.table("staff_allocation").fillna("")
    pdus = known_pdus(register, staff)
    matches = staff.index[staff["staff_id"].str.lower() == staff_id.strip().lower()]
    if matches.empty:
        raise InputError(f"--staff-id {staff_id!r}: no staff member with that ID in this run."
                         + suggestion(staff_id, staff["staff_id"]))
    target = _resolve_pdu(to_pdu, pdus)
    position = matches[0]
    source = staff.loc[position, "pdu_code"]
    if source == target["pdu_code"]:
        raise InputError(f"--to-pdu {to_pdu!r}: {staff.loc[position, 'staff_id']} is already "
                         f"in PDU {source}")
    staff.loc[position, ["pdu_code", "pdu_name", "region"]] = [
        target["pdu_code"], target["pdu_name"], target["region"]]
    staff.loc[position, list(PDU_SPECIFIC)] = ""
    moved = staff.loc[[position]]
    with register.transaction():
        register.replace_table("staff_allocation", _sorted(staff))
        kill_point("transfer:table")
        register.append_event("transferred", reason, {
            "staff_id": moved.iloc[0]["staff_id"], "from_pdu": source,
            "to_pdu": target["pdu_code"], "pdu_name": target["pdu_name"],
            "region": target["region"], "group": moved.iloc[0]["group"]})
    kill_point("transfer:committed")
    rows = _with_windows(register.design, moved).assign(from_pdu=source)
    return TurnoverResult(rows, regenerate_outputs(register, directory))


def _resolve_pdu(text: str, pdus: pd.DataFrame) -> pd.Series:
    wanted = text.strip().lower()
    hit = pdus[(pdus["pdu_code"].str.lower() == wanted) | (pdus["pdu_name"].str.lower() == wanted)]
    if hit.empty:
        raise InputError(f"--to-pdu {text!r}: {_pdu_error(text, pdus).detail}")
    return hit.iloc[0]


def _sorted(staff: pd.DataFrame) -> pd.DataFrame:
    return staff.sort_values("staff_id", kind="stable").reset_index(drop=True)[STAFF_COLUMNS]


def _with_windows(design, rows: pd.DataFrame) -> pd.DataFrame:
    out = rows[["staff_id", "name", "grade", "pdu_code", "group", "course"]].copy()
    windows = [design.window_iso(c, g) for c, g in zip(out["course"], out["group"],
                                                          strict=True)]
    out["window_start"] = [w[0] for w in windows]
    out["window_end"] = [w[1] for w in windows]
    return out


def transfer_log(register: Register) -> pd.DataFrame:
    """Every transfer (time, staff, from/to PDU, group), for the contamination report."""
    events = register.events()
    moves = events[events["kind"] == "transferred"]
    details = pd.json_normalize([json.loads(d) for d in moves["detail"]]) \
        if len(moves) else pd.DataFrame(columns=["staff_id", "from_pdu", "to_pdu", "group"])
    return pd.concat([moves[["time", "reason"]].reset_index(drop=True), details], axis=1)


WINDOWS_MARKER = "booking_windows.csv"
GUIDANCE_MARKER = "guidance.html"


def regenerate_outputs(register: Register, directory: Path) -> dict[str, Path]:
    """Rebuild every derived file from the register: the allocation exports always; booking
    windows and calendars, guidance and briefings, and the lookup page when they had been
    made (so nothing is left stale after a change)."""
    directory = Path(directory)
    files = export_allocation(register, directory)
    kill_point("exports:written")
    page = published_page(register, directory)
    if page is not None:
        files["site"] = publish(directory, out=page).path
    if (directory / WINDOWS_MARKER).exists():
        files.update({f"windows:{k}": v for k, v in run_windows(directory)[1].items()})
    if (directory / GUIDANCE_MARKER).exists():
        files.update({f"guidance:{k}": v for k, v in run_guidance(directory)[1].items()})
    return files


def published_page(register: Register, directory: Path) -> Path | None:
    """Where the lookup page was last published (event log, else DIR/site/index.html)."""
    events = register.events()
    published = events[events["kind"] == "published"]
    if len(published):
        recorded = json.loads(published.iloc[-1]["detail"]).get("path")
        if recorded:  # relative to the run folder; an absolute one only if inside this folder
            path = Path(recorded) if Path(recorded).is_absolute() else Path(directory) / recorded
            if relative_to_folder(path, directory) != str(path.resolve()):
                return path
    default = directory / "site" / "index.html"
    return default if default.exists() else None

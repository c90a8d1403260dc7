"""Replaying turnover for `verify`: original staff + logged events must give today's table.

Checks that every `enrolled` event of a staff-level design took the next unused slot of its
stratum and (given the joiner key) the group that slot holds in the sequence recomputed from
the key, that the stored commitments are that sequence's, and that the current
`staff_allocation` equals the original one with the events applied.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from evalkit.allocation.joiner_sequence import SEQUENCE_TABLE, commit, sequence_covering
from evalkit.register import PDU_SPECIFIC, STAFF_COLUMNS, Register
from evalkit.trial.design import TrialDesign

MAX_LISTED = 20
COMPARE_CHUNK = 100_000  # rows of staff_allocation compared per joined string


def _turnover_events(register: Register) -> list[tuple[str, dict]]:
    events = register.events().sort_values("id")
    events = events[events["kind"].isin(["enrolled", "transferred"])]
    return [(kind, json.loads(detail)) for kind, detail in zip(events["kind"], events["detail"],
                                                               strict=True)]


def replay(original: pd.DataFrame, events: list[tuple[str, dict]]) -> pd.DataFrame:
    """The staff table after applying `enrolled` and `transferred` events in order.

    Columns stay numpy arrays; only the rows the events touch are visited (an enrolment of a
    known ID replaces that row in place, a new ID is appended), then rows sort by staff ID.
    """
    columns = {c: _text(original[c]) for c in STAFF_COLUMNS}
    position = dict(zip(columns["staff_id"].tolist(), range(len(original)), strict=True)) \
        if events else {}
    changed: dict[int, dict[str, str]] = {}
    added: dict[str, dict[str, str]] = {}
    for kind, detail in events:
        if kind == "enrolled":
            row = {c: str(detail.get(c, "")) for c in STAFF_COLUMNS}
            if row["staff_id"] in position:
                changed[position[row["staff_id"]]] = row
            else:
                added[row["staff_id"]] = row
        elif detail["staff_id"] in position or detail["staff_id"] in added:
            moved = {"pdu_code": detail["to_pdu"], "pdu_name": detail["pdu_name"],
                     "region": detail["region"]} | dict.fromkeys(PDU_SPECIFIC, "")
            where = position.get(detail["staff_id"])
            target = added[detail["staff_id"]] if where is None else changed.setdefault(
                where, {c: columns[c][where] for c in STAFF_COLUMNS})
            target.update(moved)
    for where, row in changed.items():
        for column in STAFF_COLUMNS:
            columns[column][where] = row[column]
    frame = pd.DataFrame(columns, columns=STAFF_COLUMNS)
    if added:
        frame = pd.concat([frame, pd.DataFrame(list(added.values()), columns=STAFF_COLUMNS,
                                               dtype=object)], ignore_index=True)
    if frame["staff_id"].is_monotonic_increasing:  # already in ID order (no sort needed)
        return frame
    return frame.sort_values("staff_id", kind="stable").reset_index(drop=True)


def _text(column: pd.Series) -> np.ndarray:
    """A column as a writable numpy array of text, blanks for missing values."""
    return column.fillna("").astype(str).to_numpy(dtype=object, copy=True)


def slot_differences(design: TrialDesign, allocation: pd.DataFrame,
                     events: list[tuple[str, dict]], key: bytes | None = None) -> list[str]:
    """Enrolments that did not take the next unused slot, or (with the key) got another group
    than it holds."""
    enrolled = [d for kind, d in events if kind == "enrolled"]
    if design.trial.unit != "staff" or not enrolled:
        return []
    needed: dict[str, int] = {}
    for detail in enrolled:
        needed[detail["stratum"]] = needed.get(detail["stratum"], 0) + 1
    groups = None if key is None else \
        sequence_covering(design, allocation, needed, key).set_index(["stratum", "slot"])["group"]
    taken: dict[str, int] = {}
    differences = []
    for detail in enrolled:
        stratum, slot = detail["stratum"], int(detail["slot"])
        expected = taken.get(stratum, 0) + 1
        taken[stratum] = expected
        if slot != expected:
            differences.append(f"joiner {detail['staff_id']}: took slot {slot} of stratum "
                               f"{stratum!r}, but the next unused slot was {expected}")
        elif groups is not None and groups.get((stratum, slot)) != detail["group"]:
            differences.append(f"joiner {detail['staff_id']}: group {detail['group']!r} recorded, "
                               f"slot {slot} of stratum {stratum!r} holds "
                               f"{groups.get((stratum, slot))!r}")
    return differences


def sequence_differences(register: Register, design: TrialDesign,
                         allocation: pd.DataFrame | None, key: bytes | None = None,
                         sizes: dict[str, int] | None = None) -> list[str]:
    """The stored commitments must be those of the sequence recomputed from the key (for
    the allocation's strata, or the stratum `sizes` when given)."""
    if design.trial.unit != "staff" or not register.has_table(SEQUENCE_TABLE) or key is None:
        return []
    stored = register.table(SEQUENCE_TABLE, ["stratum", "slot", "commitment"])
    lengths = stored.groupby("stratum").size().to_dict()
    recomputed = commit(sequence_covering(design, allocation, lengths, key, sizes), key)
    merged = stored.merge(recomputed, on=["stratum", "slot"], how="left", suffixes=("", "_key"))
    changed = merged[merged["commitment"] != merged["commitment_key"]]
    return [f"joiner sequence: stratum {r.stratum!r} slot {r.slot}: the stored commitment is "
            "not the key's (the slot was altered)" for r in changed.head(MAX_LISTED).itertuples()]


def table_differences(expected: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """Row-by-row differences between the replayed and the stored staff tables."""
    stored = pd.DataFrame({c: _text(current[c]) for c in STAFF_COLUMNS})
    stored = stored.sort_values("staff_id", kind="stable").reset_index(drop=True)
    if len(stored) == len(expected) and \
            (stored["staff_id"].to_numpy() == expected["staff_id"].to_numpy()).all():
        return _aligned_differences(expected, stored)  # the usual case: compare arrays
    a = expected.set_index("staff_id")
    b = stored.set_index("staff_id")
    differences = [f"staff {s} is in staff_allocation but no event explains it"
                   for s in b.index.difference(a.index)[:MAX_LISTED]]
    differences += [f"staff {s} is missing from staff_allocation"
                    for s in a.index.difference(b.index)[:MAX_LISTED]]
    common = a.index.intersection(b.index)
    for column in [c for c in STAFF_COLUMNS if c != "staff_id"]:
        changed = common[a.loc[common, column] != b.loc[common, column]]
        differences += [f"staff {s}: {column} {b.at[s, column]!r} stored, {a.at[s, column]!r} "
                        "after replaying the events" for s in changed[:MAX_LISTED]]
    return differences


def _aligned_differences(expected: pd.DataFrame, stored: pd.DataFrame) -> list[str]:
    """Cell differences of two staff tables holding the same IDs in the same order."""
    ids = stored["staff_id"].to_numpy()
    differences = []
    for column in [c for c in STAFF_COLUMNS if c != "staff_id"]:
        differences += _cell_differences(ids, column, stored[column].to_numpy(),
                                         expected[column].to_numpy(dtype=object))
    return differences


def _cell_differences(ids: np.ndarray, column: str, have: np.ndarray,
                      want: np.ndarray) -> list[str]:
    """The first MAX_LISTED cells of one column where the stored value is not the replayed."""
    return [f"staff {ids[at]}: {column} {have[at]!r} stored, {want[at]!r} after replaying "
            "the events" for at in np.flatnonzero(want != have)[:MAX_LISTED]]


def turnover_differences(register: Register, design: TrialDesign, allocation: pd.DataFrame,
                         original_staff: pd.DataFrame, key: bytes | None = None) -> list[str]:
    """All turnover checks for `verify` (empty when everything replays exactly)."""
    slots, stored = turnover_differences_but_sequence(register, design, allocation,
                                                      original_staff, key)
    return slots + sequence_differences(register, design, allocation, key) + stored


def turnover_differences_but_sequence(register: Register, design: TrialDesign,
                                      allocation: pd.DataFrame, original_staff: pd.DataFrame,
                                      key: bytes | None = None) -> tuple[list[str], list[str]]:
    """The turnover checks that come before and after the sequence's in the report: the
    joiners' slots, and the stored staff table against the replayed events."""
    events = _turnover_events(register)
    return (slot_differences(design, allocation, events, key),
            stored_table_differences(register, replay(original_staff, events)))


def stored_table_differences(register: Register, expected: pd.DataFrame) -> list[str]:
    """`table_differences` against the register's staff_allocation. When it lists the
    expected IDs (the usual case) its columns are compared one joined string per chunk of rows
    (`_columns_unlike`), and only a column that differs is read cell by cell."""
    declared = register.columns("staff_allocation")
    if not set(STAFF_COLUMNS) <= declared.keys():
        return table_differences(expected, register.table("staff_allocation"))
    ids = _stored_text(register, "staff_id", declared)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    if len(ids) != len(expected) or not (ids == expected["staff_id"].to_numpy()).all():
        return table_differences(expected, register.table("staff_allocation"))
    columns = [c for c in STAFF_COLUMNS if c != "staff_id"]
    wanted = {c: expected[c].to_numpy(dtype=object) for c in columns}
    unlike = _columns_unlike(register, wanted, order)
    differences: list[str] = []
    for column in [c for c in columns if c in unlike]:  # only these are read cell by cell
        differences += _cell_differences(ids, column,
                                         _stored_text(register, column, declared)[order],
                                         wanted[column])
    return differences


def _columns_unlike(register: Register, wanted: dict[str, np.ndarray],
                    order: np.ndarray) -> set[str]:
    """The staff_allocation columns whose stored cells are not exactly `wanted` (rows in
    staff-ID order; row `order[i]` is stored i-th), compared one joined string per chunk of
    rows: a column whose stored texts joined by U+001F equal the wanted texts so joined, with
    no U+001F inside any of them, holds exactly those texts."""
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))  # stored row i holds wanted row rank[i]
    unlike: set[str] = set()
    start = 0
    for count, stored in register.joined_text("staff_allocation", list(wanted),
                                                   COMPARE_CHUNK):
        rows = rank[start:start + count]
        for column, have in zip(wanted, stored, strict=True):
            if column not in unlike and not _joined_equal(have, wanted[column][rows]):
                unlike.add(column)
        start += count
    return unlike if start == len(order) else set(wanted)


def _joined_equal(have: str | None, want: np.ndarray) -> bool:
    """True when `have` is exactly the texts of `want` joined by U+001F (see `joined_text`)."""
    try:
        text = "\x1f".join(want)
    except TypeError:  # a value that is not text: compared cell by cell instead
        return False
    return have == text and text.count("\x1f") == len(want) - 1


def _stored_text(register: Register, column: str, declared: dict[str, str]) -> np.ndarray:
    """One stored column as `_text` gives it: a TEXT column's values straight from SQLite
    (no frame in between), any other through pandas as before."""
    values = None
    if declared[column] == "TEXT":  # joined by SQLite when all text, else cell by cell
        values = register.text_column("staff_allocation", column)
        if values is None:
            values = register.column("staff_allocation", column)
    if values is None or not set(map(type, values)) <= {str, type(None)}:
        return _text(register.table("staff_allocation", [column])[column])
    if None in values:
        values = ["" if value is None else value for value in values]
    return np.array(values, dtype=object)

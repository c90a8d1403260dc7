"""Replaying turnover for `verify`: original staff + logged events must give today's table.

Checks that every `enrolled` event of a staff-level design took the next unused slot of its
stratum and (given the joiner key) the group that slot holds in the sequence recomputed from
the key, that the stored commitments are that sequence's, and that the current
`staff_allocation` equals the original one with the events applied.
"""

from __future__ import annotations

import json

import pandas as pd

from evalkit.allocation.joiner_sequence import SEQUENCE_TABLE, commit, sequence_covering
from evalkit.register import PDU_SPECIFIC, STAFF_COLUMNS, Register
from evalkit.trial.design import TrialDesign

MAX_LISTED = 20


def _turnover_events(register: Register) -> list[tuple[str, dict]]:
    events = register.events().sort_values("id")
    events = events[events["kind"].isin(["enrolled", "transferred"])]
    return [(kind, json.loads(detail)) for kind, detail in zip(events["kind"], events["detail"],
                                                               strict=True)]


def replay(original: pd.DataFrame, events: list[tuple[str, dict]]) -> pd.DataFrame:
    """The staff table after applying `enrolled` and `transferred` events in order."""
    table = original[STAFF_COLUMNS].fillna("").astype(str)
    rows = {row["staff_id"]: row for row in table.to_dict("records")}
    for kind, detail in events:
        if kind == "enrolled":
            rows[str(detail["staff_id"])] = {c: str(detail.get(c, "")) for c in STAFF_COLUMNS}
        elif detail["staff_id"] in rows:
            rows[detail["staff_id"]].update(
                {"pdu_code": detail["to_pdu"], "pdu_name": detail["pdu_name"],
                 "region": detail["region"]} | dict.fromkeys(PDU_SPECIFIC, ""))
    frame = pd.DataFrame(list(rows.values()), columns=STAFF_COLUMNS)
    return frame.sort_values("staff_id", kind="stable").reset_index(drop=True)


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
                         allocation: pd.DataFrame, key: bytes | None = None) -> list[str]:
    """The stored commitments must be those of the sequence recomputed from the key."""
    if design.trial.unit != "staff" or not register.has_table(SEQUENCE_TABLE) or key is None:
        return []
    stored = register.table(SEQUENCE_TABLE)
    lengths = stored.groupby("stratum").size().to_dict()
    recomputed = commit(sequence_covering(design, allocation, lengths, key), key)
    merged = stored.merge(recomputed, on=["stratum", "slot"], how="left", suffixes=("", "_key"))
    changed = merged[merged["commitment"] != merged["commitment_key"]]
    return [f"joiner sequence: stratum {r.stratum!r} slot {r.slot}: the stored commitment is "
            "not the key's (the slot was altered)" for r in changed.head(MAX_LISTED).itertuples()]


def table_differences(expected: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """Row-by-row differences between the replayed and the stored staff tables."""
    a = expected.set_index("staff_id")
    b = current[STAFF_COLUMNS].fillna("").astype(str).set_index("staff_id")
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


def turnover_differences(register: Register, design: TrialDesign, allocation: pd.DataFrame,
                         original_staff: pd.DataFrame, key: bytes | None = None) -> list[str]:
    """All turnover checks for `verify` (empty when everything replays exactly)."""
    events = _turnover_events(register)
    differences = slot_differences(design, allocation, events, key)
    differences += sequence_differences(register, design, allocation, key)
    current = register.table("staff_allocation")
    differences += table_differences(replay(original_staff, events), current)
    return differences

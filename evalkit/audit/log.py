"""`log`: the register's append-only event log as a table people can read.

Each row says when, who (OS user and host, when the event recorded them), which command,
what changed and why. Written as `events.csv` (machine names) and `events.xlsx` (readable).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.allocation.about import workbook_about
from evalkit.io.files import write_csv
from evalkit.io.xlsx import write_workbook
from evalkit.register import Register

LOG_COLUMNS = ["id", "time", "user", "host", "command", "kind", "what_changed", "reason"]
EVENTS_CSV, EVENTS_XLSX = "events.csv", "events.xlsx"
_WHO_KEYS = {"user": ("user", "os_user", "username"), "host": ("host", "hostname"),
             "command": ("command", "argv", "cmd")}


def _who(detail: dict[str, Any], field: str) -> str:
    """User, host or command from an event's detail (top level or under 'who'); '' if absent."""
    for place in (detail.get("who") if isinstance(detail.get("who"), dict) else {}, detail):
        for key in _WHO_KEYS[field]:
            value = place.get(key)
            if value:
                return " ".join(map(str, value)) if isinstance(value, list) else str(value)
    return ""


def _count(detail: dict[str, Any], key: str) -> int:
    value = detail.get(key, 0)
    return len(value) if isinstance(value, list) else int(value or 0)


def _verified(detail: dict) -> str:
    if detail.get("matches"):
        return "verified: the allocation recomputes identically"
    return f"verify FAILED: {_count(detail, 'differences')} difference(s)"


def _monitored(detail: dict) -> str:
    return (f"monitored {detail.get('rows', 0)} booking rows as at {detail.get('as_of', '?')}: "
            f"{detail.get('late', 0)} late, {detail.get('not_booked', 0)} not booked, "
            f"{detail.get('control_early', 0)} Control booked early")


_DESCRIBE = {
    "created": lambda d: "register created and the allocation sealed",
    "refreshed": lambda d: "derived files rebuilt from the register"
                           + (f": {', '.join(map(str, d['files']))}" if d.get("files") else ""),
    "exported": lambda d: "allocation exports written: " + ", ".join(d.get("files", [])),
    "enrolled": lambda d: f"new starter {d.get('staff_id', '?')} enrolled in "
                          f"{d.get('pdu_code', '?')} -> {d.get('group', '?')}",
    "transferred": lambda d: f"{d.get('staff_id', '?')} moved {d.get('from_pdu', '?')} -> "
                             f"{d.get('to_pdu', '?')} (stays {d.get('group', '?')})",
    "monitored": _monitored,
    "verified": _verified,
    "published": lambda d: f"lookup page published ({d.get('pdus', 0)} PDUs, "
                           f"{d.get('staff_entries', 0)} personal codes)",
    "analysed": lambda d: f"outcomes analysed from {Path(str(d.get('outcomes_file', '?'))).name}"
                          f" ({d.get('deviations', 0)} deviation(s) from the plan)",
    "power_recorded": lambda d: "design-stage power (MDES) recorded",
}


def describe_event(kind: str, detail: dict[str, Any]) -> str:
    """What an event changed, in one plain sentence."""
    describe = _DESCRIBE.get(kind)
    if describe is not None:
        try:
            return describe(detail)
        except (TypeError, ValueError):
            pass
    shown = {k: v for k, v in detail.items() if k != "who"}
    return f"{kind}: " + ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))[:200]


def event_log(register: Register) -> pd.DataFrame:
    """The event log, oldest first: id, time, user, host, command, kind, what changed, reason."""
    records = []
    for row in register.events().itertuples(index=False):
        try:
            detail = json.loads(row.detail or "{}")
        except json.JSONDecodeError:
            detail = {"unreadable_detail": row.detail}
        detail = detail if isinstance(detail, dict) else {"value": detail}
        records.append((int(row.id), str(row.time), _who(detail, "user"), _who(detail, "host"),
                        _who(detail, "command"), str(row.kind), describe_event(row.kind, detail),
                        str(row.reason or "")))
    return pd.DataFrame.from_records(records, columns=LOG_COLUMNS)


def write_event_log(directory: Path) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Write events.csv and events.xlsx into the run folder; return the log and the paths."""
    register = Register.open(directory)
    log = event_log(register)
    directory = Path(directory)
    about = workbook_about(register, "The register's append-only event log")
    files = {
        "csv": write_csv(directory / EVENTS_CSV, log),
        "xlsx": write_workbook(directory / EVENTS_XLSX, {"Events": log}, about=about,
                               empty_notes={"Events": "The register has no events yet."}),
    }
    return log, files

"""The trial register: one SQLite file, the single source of truth for a sealed allocation.

Tables: `meta` (design, manifest), `units`, `allocation`, `staff_allocation` and an
append-only `events` log. Triggers make the allocation and the event log impossible to
change quietly: updates and deletes abort.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.errors import CheckFailed, EvalkitError
from evalkit.trial.design import TrialDesign

REGISTER_FILE = "register.sqlite"

# The staff_allocation table's schema, shared by every stage that reads or writes it.
NOT_IN_TRIAL = "Not in trial"
STAFF_COLUMNS = ["staff_id", "name", "email", "grade", "pdu_code", "pdu_name", "region", "pod",
                 "line_manager_id", "office", "group", "course"]
PERSONAL_COLUMNS = ("name", "email", "pod", "line_manager_id", "office", "start_date")
PDU_SPECIFIC = ("pod", "office", "line_manager_id")  # cleared when someone transfers

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
"""

_SEAL = """
CREATE TRIGGER allocation_sealed_update BEFORE UPDATE ON allocation
BEGIN SELECT RAISE(ABORT, 'the allocation is sealed'); END;
CREATE TRIGGER allocation_sealed_delete BEFORE DELETE ON allocation
BEGIN SELECT RAISE(ABORT, 'the allocation is sealed'); END;
"""


def now_utc() -> str:
    """Current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def register_path(directory: Path) -> Path:
    """Where the register lives inside an output folder."""
    return Path(directory) / REGISTER_FILE


def is_sealed(directory: Path) -> bool:
    """True when `directory` holds a register with a sealed allocation."""
    path = register_path(directory)
    if not path.exists():
        return False
    try:
        return Register(path).meta("manifest") is not None
    except (sqlite3.DatabaseError, EvalkitError):
        return True  # something is there we cannot read: never overwrite it


class Register:
    """Read and append to a register file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def open(cls, directory: Path) -> Register:
        """Open the register in an output folder; fail clearly if there is none."""
        path = register_path(directory)
        if not path.exists():
            raise EvalkitError(f"{directory}: no register found (run `evalkit assign` first)")
        return cls(path)

    @classmethod
    def create(cls, path: Path, tables: dict[str, pd.DataFrame], meta: dict[str, Any]) -> Register:
        """Write a new register with its tables and metadata, then seal the allocation."""
        with sqlite3.connect(path) as connection:
            # a fresh file in a staging folder, renamed into place only when complete
            connection.execute("PRAGMA journal_mode = OFF")
            connection.execute("PRAGMA synchronous = OFF")
            connection.executescript(_SCHEMA)
            for name, frame in tables.items():
                frame.to_sql(name, connection, index=False)
            connection.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [(key, json.dumps(value, sort_keys=True)) for key, value in meta.items()],
            )
            connection.executescript(_SEAL)
        connection.close()
        register = cls(path)
        register.append_event("created", detail={"tables": sorted(tables)})
        return register

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def meta(self, key: str) -> Any:
        """A JSON value from the meta table, or None."""
        with self._connect() as connection:
            row = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        connection.close()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Insert or replace a metadata value (never the manifest once sealed)."""
        if key == "manifest" and self.meta("manifest") is not None:
            raise EvalkitError("the manifest of a sealed allocation cannot be replaced")
        with self._connect() as connection:
            connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                               (key, json.dumps(value, sort_keys=True)))
        connection.close()

    def table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """A table (or some of its columns) as a data frame (text columns keep their text)."""
        selected = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        with self._connect() as connection:
            frame = pd.read_sql_query(f'SELECT {selected} FROM "{name}"', connection)
        connection.close()
        return frame

    def has_table(self, name: str) -> bool:
        """True when the register holds a table called `name` (later stages add tables)."""
        with self._connect() as connection:
            row = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
        connection.close()
        return row is not None

    def replace_table(self, name: str, frame: pd.DataFrame) -> None:
        """Replace a derived (not sealed) table, e.g. staff_allocation after a joiner."""
        if name in {"allocation", "events", "meta"}:
            raise EvalkitError(f"table {name!r} cannot be replaced")
        with self._connect() as connection:
            frame.to_sql(name, connection, index=False, if_exists="replace")
        connection.close()

    def append_event(self, kind: str, reason: str = "", detail: dict | None = None) -> None:
        """Add an entry to the append-only event log."""
        with self._connect() as connection:
            connection.execute(
                "INSERT INTO events (time, kind, reason, detail) VALUES (?, ?, ?, ?)",
                (now_utc(), kind, reason, json.dumps(detail or {}, sort_keys=True, default=str)),
            )
        connection.close()

    def events(self) -> pd.DataFrame:
        """The event log, oldest first."""
        return self.table("events")

    @property
    def manifest(self) -> dict[str, Any]:
        """The sealed manifest; CheckFailed when the register holds no allocation."""
        manifest = self.meta("manifest")
        if manifest is None:
            raise CheckFailed(f"{self.path}: the register holds no sealed allocation")
        return manifest

    @property
    def design(self) -> TrialDesign:
        """The validated design the allocation was made with."""
        return TrialDesign.model_validate(self.meta("design"))

"""The trial register: one SQLite file, the single source of truth for a sealed allocation.

Tables: `meta` (design, manifest, ...), `units`, `allocation`, `staff_allocation`, the
append-only `events` log and `artefacts` (the SHA-256 of every file evalkit wrote into the run
folder, path relative to the folder). Triggers make the allocation and the event log
impossible to change quietly: updates and deletes abort.

Events (`events` table), one row per change, oldest first:
  id      INTEGER  1, 2, 3 ... (AUTOINCREMENT: a deleted last event leaves a gap `verify` sees)
  time    TEXT     UTC, ISO 8601 to the second
  kind    TEXT     created, exported, enrolled, transferred, published, monitored, verified,
                   refreshed, ...
  reason  TEXT     the user's --reason ('' if none)
  detail  TEXT     JSON object: what changed, plus "who": {"user", "host", "command"} (the OS
                   user, host name and command line that made the change)
  chain   TEXT     SHA-256 hex of (previous event's chain, id, time, kind, reason, detail):
                   editing, inserting or deleting an event breaks every chain after it
The `created` event's detail holds "sealed": a digest of the sealed contents (design,
manifest, units, allocation); its chain value is the register's *root hash*, printed on the
seal receipt that `assign` writes, so `verify --receipt` proves the folder is the one sealed.

Changes go through `Register.transaction()` (BEGIN IMMEDIATE ... COMMIT): everything a command
changes in the register commits at once or not at all. `writing(DIR, command)` wraps a whole
command: it holds the folder lock, marks the folder pending (`.evalkit.pending`) while derived files
are being rewritten, and records the hashes of the files the command wrote.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit.errors import CheckFailed, EvalkitError
from evalkit.io.runfolder import (
    LOCK_FILE,
    clear_pending,
    folder_lock,
    mark_pending,
    pending,
    relative_to_folder,
    who,
)
from evalkit.trial.design import TrialDesign

REGISTER_FILE = "register.sqlite"
RECEIPT_FILE = "receipt.txt"
SEALED_TABLES = ("units", "allocation")

# The staff_allocation table's schema, shared by every stage that reads or writes it.
NOT_IN_TRIAL = "Not in trial"
STAFF_COLUMNS = ["staff_id", "name", "email", "grade", "pdu_code", "pdu_name", "region", "pod",
                 "line_manager_id", "office", "group", "course"]
PERSONAL_COLUMNS = ("name", "email", "pod", "line_manager_id", "office", "start_date")
PDU_SPECIFIC = ("pod", "office", "line_manager_id")  # cleared when someone transfers

EXPECTED_TRIGGERS = {
    "events_no_update": "CREATE TRIGGER events_no_update BEFORE UPDATE ON events\n"
                        "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END",
    "events_no_delete": "CREATE TRIGGER events_no_delete BEFORE DELETE ON events\n"
                        "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END",
    "allocation_sealed_update": "CREATE TRIGGER allocation_sealed_update BEFORE UPDATE ON "
                                "allocation\nBEGIN SELECT RAISE(ABORT, 'the allocation is "
                                "sealed'); END",
    "allocation_sealed_delete": "CREATE TRIGGER allocation_sealed_delete BEFORE DELETE ON "
                                "allocation\nBEGIN SELECT RAISE(ABORT, 'the allocation is "
                                "sealed'); END",
}

_SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '{}',
    chain TEXT NOT NULL DEFAULT ''
)""",
    "CREATE TABLE artefacts (path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, "
    "event_id INTEGER NOT NULL, written_at TEXT NOT NULL)",
    EXPECTED_TRIGGERS["events_no_update"], EXPECTED_TRIGGERS["events_no_delete"],
]
_SEAL = [EXPECTED_TRIGGERS["allocation_sealed_update"],
         EXPECTED_TRIGGERS["allocation_sealed_delete"]]


def now_utc() -> str:
    """Current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def register_path(directory: Path) -> Path:
    """Where the register lives inside an output folder."""
    return Path(directory) / REGISTER_FILE


def sha256_bytes_of(path: Path) -> str:
    """SHA-256 hex of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_sealed(directory: Path) -> bool:
    """True when `directory` holds a register with a sealed allocation."""
    path = register_path(directory)
    if not path.exists():
        return False
    try:
        return Register(path, readonly=True).meta("manifest") is not None
    except (sqlite3.DatabaseError, EvalkitError):
        return True  # something is there we cannot read: never overwrite it


def event_chain(previous: str, event_id: int, time: str, kind: str, reason: str,
                detail: str) -> str:
    """The chain value of one event: SHA-256 over the previous one and this event's fields."""
    text = "\x1e".join([previous, str(event_id), time, kind, reason, detail])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sealed_digest(connection: sqlite3.Connection, meta_keys: list[str]) -> str:
    """Digest of the sealed contents: the named meta values and the sealed tables' rows."""
    digest = hashlib.sha256()
    for key in sorted(meta_keys):
        row = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        digest.update(f"meta:{key}\x1f{row[0] if row else ''}\x1e".encode())
    for table in SEALED_TABLES:
        cursor = connection.execute(f'SELECT * FROM "{table}" ORDER BY rowid')
        digest.update(f"table:{table}\x1f{[c[0] for c in cursor.description]}".encode())
        for row in cursor:
            digest.update(json.dumps(list(row), default=str).encode() + b"\x1e")
    return digest.hexdigest()


def _write_frame(connection: sqlite3.Connection, name: str, frame: pd.DataFrame) -> None:
    """(Re)create table `name` from a frame inside the current transaction (pandas' schema)."""
    connection.execute(f'DROP TABLE IF EXISTS "{name}"')
    connection.execute(pd.io.sql.get_schema(frame, name))
    marks = ", ".join("?" * len(frame.columns))
    columns = [_sql_values(frame.iloc[:, i]) for i in range(frame.shape[1])]
    connection.executemany(f'INSERT INTO "{name}" VALUES ({marks})', zip(*columns, strict=True))


def _sql_values(series: pd.Series) -> list[Any]:
    """A column as the plain Python values SQLite stores, missing values as None: numeric
    numpy columns in one `tolist` (no per-cell calls), anything else cell by cell."""
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iub":
        return series.tolist()
    if isinstance(series.dtype, np.dtype) and series.dtype.kind == "f":
        return [None if value != value else value for value in series.tolist()]
    clean = series.astype(object).where(series.notna(), None)
    return [_plain(value) for value in clean.tolist()]


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if isinstance(value, (pd.Timestamp, dt.date)):
        return str(value)
    return value


class Register:
    """Read and change a register file; changes happen in transactions."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._tx: sqlite3.Connection | None = None
        self.interrupted: dict | None = None  # set by `writing`: a killed command's marker

    @classmethod
    def open(cls, directory: Path, readonly: bool = False) -> Register:
        """Open the register in an output folder; fail clearly if there is none."""
        path = register_path(directory)
        if not path.exists():
            raise EvalkitError(f"{directory}: no register found (run `evalkit assign` first)")
        return cls(path, readonly=readonly)

    @classmethod
    def create(cls, path: Path, tables: dict[str, pd.DataFrame], meta: dict[str, Any]) -> Register:
        """Write a new register with its tables and metadata, then seal the allocation."""
        connection = sqlite3.connect(path, isolation_level=None)
        try:  # a fresh file in a staging folder, renamed into place only when complete
            connection.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                connection.execute(statement)
            for name, frame in tables.items():
                _write_frame(connection, name, frame)
            connection.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [(key, json.dumps(value, sort_keys=True)) for key, value in meta.items()])
            for statement in _SEAL:
                connection.execute(statement)
            sealed = sealed_digest(connection, sorted(meta))
            _insert_event(connection, "created", "", {"tables": sorted(tables),
                                                      "sealed": sealed,
                                                      "sealed_meta": sorted(meta)})
            connection.execute("COMMIT")
        finally:
            connection.close()
        return cls(path)

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?mode=ro"
            return sqlite3.connect(uri, uri=True, isolation_level=None)
        return sqlite3.connect(self.path, isolation_level=None, timeout=30)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        if self._tx is not None:
            yield self._tx
            return
        connection = self._connect()
        try:
            yield connection
        finally:
            connection.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: every change inside commits together, or none does."""
        if self._tx is not None:  # nested: part of the enclosing transaction
            yield self._tx
            return
        if self.readonly:
            raise EvalkitError(f"{self.path}: opened read-only; cannot change the register")
        connection = self._connect()
        connection.execute("BEGIN IMMEDIATE")
        self._tx = connection
        try:
            yield connection
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        finally:
            self._tx = None
            connection.close()

    def meta(self, key: str) -> Any:
        """A JSON value from the meta table, or None."""
        with self._reading() as connection:
            row = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Insert or replace a metadata value (never the manifest once sealed)."""
        with self.transaction() as connection:
            if key == "manifest" and self.meta("manifest") is not None:
                raise EvalkitError("the manifest of a sealed allocation cannot be replaced")
            connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                               (key, json.dumps(value, sort_keys=True)))

    def delete_meta(self, key: str) -> None:
        """Remove a metadata value (e.g. the pending-refresh marker)."""
        with self.transaction() as connection:
            connection.execute("DELETE FROM meta WHERE key = ?", (key,))

    def table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """A table (or some of its columns) as a data frame (text columns keep their text)."""
        selected = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        with self._reading() as connection:
            return pd.read_sql_query(f'SELECT {selected} FROM "{name}"', connection)

    def has_table(self, name: str) -> bool:
        """True when the register holds a table called `name` (later stages add tables)."""
        with self._reading() as connection:
            row = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
        return row is not None

    def query(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        """Rows of a read-only SQL query (for audits)."""
        with self._reading() as connection:
            return connection.execute(sql, parameters).fetchall()

    def replace_table(self, name: str, frame: pd.DataFrame) -> None:
        """Replace a derived (not sealed) table, e.g. staff_allocation after a joiner."""
        if name in {"allocation", "events", "meta", "units", "artefacts"}:
            raise EvalkitError(f"table {name!r} cannot be replaced")
        with self.transaction() as connection:
            _write_frame(connection, name, frame)

    def append_event(self, kind: str, reason: str = "", detail: dict | None = None) -> int:
        """Add an entry to the append-only, hash-chained event log; return its id."""
        with self.transaction() as connection:
            return _insert_event(connection, kind, reason, detail or {})

    def events(self) -> pd.DataFrame:
        """The event log, oldest first."""
        return self.table("events").sort_values("id").reset_index(drop=True)

    def sealed_digest(self, meta_keys: list[str]) -> str:
        """The digest of the sealed contents as they are now (see `sealed_digest`)."""
        with self._reading() as connection:
            return sealed_digest(connection, meta_keys)

    def root_hash(self) -> str:
        """The chain value of the `created` event: what the seal receipt records."""
        try:
            rows = self.query("SELECT chain FROM events WHERE kind = 'created' ORDER BY id "
                              "LIMIT 1")
        except sqlite3.OperationalError:  # a register from before chained events
            return ""
        return rows[0][0] if rows else ""

    def record_artefacts(self, directory: Path, paths: list[Path]) -> None:
        """Record the SHA-256 of files just written into the run folder."""
        with self.transaction() as connection:
            _upgrade(connection)
            last = connection.execute("SELECT MAX(id) FROM events").fetchone()[0] or 0
            connection.executemany(
                "INSERT OR REPLACE INTO artefacts (path, sha256, event_id, written_at) "
                "VALUES (?, ?, ?, ?)",
                [(relative_to_folder(p, directory), sha256_bytes_of(p), last, now_utc())
                 for p in paths if Path(p).is_file()])

    def forget_artefacts(self, relative_paths: list[str]) -> None:
        """Drop the records of files a command removed on purpose."""
        with self.transaction() as connection:
            connection.executemany("DELETE FROM artefacts WHERE path = ?",
                                   [(p,) for p in relative_paths])

    def artefacts(self) -> pd.DataFrame:
        """Recorded artefacts: path (relative to the run folder), sha256, event_id, written_at."""
        if not self.has_table("artefacts"):
            return pd.DataFrame(columns=["path", "sha256", "event_id", "written_at"])
        return self.table("artefacts")

    @property
    def manifest(self) -> dict[str, Any]:
        """The sealed manifest; CheckFailed when the register holds no allocation."""
        manifest = self.meta("manifest")
        if manifest is None:
            raise CheckFailed(f"{self.path}: the register holds no sealed allocation")
        return manifest

    @property
    def design(self) -> TrialDesign:
        """The validated design the allocation was made with (CheckFailed if edited invalid)."""
        try:
            return TrialDesign.model_validate(self.meta("design"))
        except ValueError as error:  # pydantic's ValidationError is a ValueError
            raise CheckFailed(f"{self.path}: the stored design is not a valid design (edited?);"
                              " run `evalkit verify` on this folder") from error


def _upgrade(connection: sqlite3.Connection) -> None:
    """Bring a register made by an older evalkit up to the chained schema (new events only)."""
    columns = [row[1] for row in connection.execute("PRAGMA table_info(events)")]
    if "chain" not in columns:
        connection.execute("ALTER TABLE events ADD COLUMN chain TEXT NOT NULL DEFAULT ''")
    connection.execute(_SCHEMA[2].replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))


def _insert_event(connection: sqlite3.Connection, kind: str, reason: str, detail: dict) -> int:
    _upgrade(connection)
    row = connection.execute("SELECT id, chain FROM events ORDER BY id DESC LIMIT 1").fetchone()
    sequence = connection.execute(
        "SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    event_id = max(row[0] if row else 0, sequence[0] if sequence else 0) + 1
    previous = row[1] if row else ""
    time = now_utc()
    text = json.dumps({"who": who(), **detail}, sort_keys=True, default=str)
    connection.execute(
        "INSERT INTO events (id, time, kind, reason, detail, chain) VALUES (?, ?, ?, ?, ?, ?)",
        (event_id, time, kind, reason, text, event_chain(previous, event_id, time, kind, reason,
                                                         text)))
    return event_id


def _snapshot(directory: Path) -> dict[str, tuple[int, int, int]]:
    """Every file in the run folder (not the register or the lock): path -> (mtime, size, inode)."""
    found = {}
    base = Path(directory)
    for root, folders, files in os.walk(base):
        folders[:] = [f for f in folders if not f.startswith(".")]
        for name in files:
            if name.startswith(".") or name.startswith(REGISTER_FILE) or name == LOCK_FILE:
                continue
            path = Path(root) / name
            with contextlib.suppress(OSError):
                stat = path.stat()
                found[path.relative_to(base).as_posix()] = (stat.st_mtime_ns, stat.st_size,
                                                            stat.st_ino)
    return found


_depth: dict[Path, int] = {}


@contextlib.contextmanager
def writing(directory: Path, command: str = "", mark: bool = True) -> Iterator[Register | None]:
    """Run a command that writes into a run folder: lock it, mark derived files pending,
    and record the hashes of the files written. Yields the register (None if there is none).

    `register.interrupted` is the marker a killed earlier command left (None if none)."""
    directory = Path(directory)
    key = directory.resolve()
    with folder_lock(directory, command):
        outermost = key not in _depth
        _depth[key] = _depth.get(key, 0) + 1
        register = Register.open(directory) if register_path(directory).exists() else None
        before = _snapshot(directory) if outermost and register is not None else None
        register_stat = _register_stat(directory)
        try:
            if register is not None:
                register.interrupted = pending(directory) if outermost else None
            if before is not None and mark and register.interrupted is None:
                mark_pending(directory, command or who()["command"])
            yield register
        except BaseException:
            # a failed command that committed nothing leaves the folder as it was; one that
            # committed keeps the marker, so the next command rebuilds the files
            if before is not None:
                _record_changes(register, directory, before)
                if mark and _register_stat(directory) == register_stat:
                    clear_pending(directory)
            raise
        else:
            if before is not None:
                _record_changes(register, directory, before)  # hashes first, then the marker
                if mark:
                    clear_pending(directory)
        finally:
            _depth[key] -= 1
            if not _depth[key]:
                del _depth[key]


def _register_stat(directory: Path) -> tuple[int, int] | None:
    try:
        stat = register_path(directory).stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _record_changes(register: Register, directory: Path,
                    before: dict[str, tuple[int, int, int]]) -> None:
    after = _snapshot(directory)
    changed = [directory / p for p, stat in after.items() if before.get(p) != stat]
    if changed:
        register.record_artefacts(directory, changed)
    recorded = set(register.artefacts()["path"])
    removed = [p for p in before if p not in after and p in recorded]
    if removed:
        register.forget_artefacts(removed)
